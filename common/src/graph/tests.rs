use super::op::{Conv, Pool};
use super::*;

fn conv3(channels: usize, groups: usize) -> Op {
    Op::Conv2d(Conv {
        channels,
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1; 4],
        dilation: [1, 1],
        groups,
    })
}

/// A residual block on `[4, 8, 8]`: conv, ReLU, conv, the input added back, global pooling,
/// a dense head of 10.
fn residual() -> ModelGraph {
    ModelGraph {
        input_shape: vec![4, 8, 8],
        nodes: vec![
            Node::new("c1", conv3(4, 1), &[INPUT]),
            Node::new("r1", Op::Relu, &["c1"]),
            Node::new("c2", conv3(4, 1), &["r1"]),
            Node::new("sum", Op::Add, &[INPUT, "c2"]),
            Node::new("gap", Op::GlobalAvgPool, &["sum"]),
            Node::new("fc", Op::Dense { units: 10 }, &["gap"]),
        ],
        output: "fc".into(),
    }
}

#[test]
fn a_residual_block_resolves() {
    let r = residual().resolve().unwrap();
    assert_eq!(r.shapes["c2"], vec![4, 8, 8]);
    assert_eq!(r.shapes["sum"], vec![4, 8, 8]);
    assert_eq!(r.output_shape, vec![10]);
    // Two 3x3 convolutions of 4 -> 4 channels with biases, and a 4 -> 10 dense layer.
    assert_eq!(r.num_params(), 2 * (4 * 4 * 9 + 4) + (4 * 10 + 10));
    let json = serde_json::to_string(&residual()).unwrap();
    assert_eq!(
        serde_json::from_str::<ModelGraph>(&json).unwrap(),
        residual()
    );
}

#[test]
fn depthwise_dilated_and_asymmetric_convolutions_and_concatenation() {
    let depthwise = Conv {
        channels: 6,
        kernel: [3, 3],
        stride: [2, 1],
        pads: [0, 1, 1, 0],
        dilation: [2, 2],
        groups: 6,
    };
    let graph = ModelGraph {
        input_shape: vec![6, 9, 9],
        nodes: vec![
            Node::new("dw", Op::Conv2d(depthwise), &[INPUT]),
            Node::new("pool", Op::MaxPool2d(Pool::square(2, 1)), &["dw"]),
            Node::new("cat", Op::Concat, &["dw", "dw"]),
            Node::new("six", Op::Clip { min: 0.0, max: 6.0 }, &["cat"]),
        ],
        output: "six".into(),
    };
    let r = graph.resolve().unwrap();
    // A dilated 3x3 spans 5: (9 + 1 - 5) / 2 + 1 = 3 rows, (9 + 1 - 5) / 1 + 1 = 6 columns.
    assert_eq!(r.shapes["dw"], vec![6, 3, 6]);
    assert_eq!(r.shapes["pool"], vec![6, 2, 5]);
    assert_eq!(r.output_shape, vec![12, 3, 6]);
    assert_eq!(r.params, vec![vec![6, 1, 3, 3], vec![6]]);
}

#[test]
fn every_problem_names_its_node() {
    let err = |g: &ModelGraph| g.resolve().unwrap_err();
    // An addition of two shapes.
    let mut g = residual();
    g.nodes.swap(3, 4);
    g.nodes[3].inputs = vec!["c2".into()];
    g.nodes[4].inputs = vec![INPUT.into(), "gap".into()];
    g.nodes[5].inputs = vec!["sum".into()];
    assert_eq!(
        err(&g),
        GraphError {
            node: "sum".into(),
            problem: GraphProblem::Mismatch {
                op: "add",
                left: vec![4, 8, 8],
                right: vec![4],
            },
        }
    );
    // A value read before it is made, one made twice, the wrong number of inputs.
    let mut g = residual();
    g.nodes[1].inputs = vec!["c2".into()];
    assert_eq!(
        err(&g),
        GraphError {
            node: "r1".into(),
            problem: GraphProblem::Unknown("c2".into()),
        }
    );
    let mut g = residual();
    g.nodes[2].output = "c1".into();
    assert_eq!(
        err(&g).problem,
        GraphProblem::Duplicate("c1".into()),
        "c2 writes c1"
    );
    let mut g = residual();
    g.nodes[3].inputs.pop();
    assert_eq!(
        err(&g).problem,
        GraphProblem::Arity {
            op: "add",
            expected: 2,
            got: 1
        }
    );
    // Groups that do not divide the channels; a pooling pad as wide as its window; reversed
    // clip bounds; a dense layer on an image; an output nobody makes.
    let pool_pad = Op::MaxPool2d(Pool {
        pads: [2, 0, 0, 0],
        ..Pool::square(2, 1)
    });
    let out_of_range = [
        (0, conv3(4, 3), "conv2d", "groups"),
        (1, pool_pad, "pool2d", "pads"),
        (1, Op::Clip { min: 6.0, max: 0.0 }, "clip", "bounds"),
        (
            1,
            Op::Clip {
                min: f64::NAN,
                max: 6.0,
            },
            "clip",
            "bounds",
        ),
    ];
    for (at, op, name, attribute) in out_of_range {
        let mut g = residual();
        g.nodes[at].op = op;
        assert_eq!(
            err(&g).problem,
            GraphProblem::Attribute {
                op: name,
                attribute
            },
            "{op:?}"
        );
    }
    let mut g = residual();
    g.nodes[5].inputs = vec!["sum".into()];
    assert_eq!(
        err(&g),
        GraphError {
            node: "fc".into(),
            problem: GraphProblem::Shape {
                op: "dense",
                input: vec![4, 8, 8],
            },
        }
    );
    let mut g = residual();
    g.output = "logits".into();
    assert_eq!(
        err(&g),
        GraphError {
            node: "output".into(),
            problem: GraphProblem::Unknown("logits".into()),
        }
    );
}

/// Sizes a hostile party may write (the graph reaches every server and data owner) are refused
/// with a typed error before any arithmetic on them can overflow or any memory is allocated.
#[test]
fn sizes_that_would_overflow_or_exhaust_memory_are_refused() {
    let too_large = |g: &ModelGraph| match g.resolve() {
        Err(GraphError {
            node,
            problem: GraphProblem::TooLarge { what },
        }) => (node, what),
        other => panic!("{other:?}"),
    };
    // A padding near usize::MAX (`h + pads` would overflow).
    let mut g = residual();
    g.nodes[0].op = Op::Conv2d(Conv {
        channels: 4,
        kernel: [3, 3],
        stride: [1, 1],
        pads: [usize::MAX, 1, 1, 1],
        dilation: [1, 1],
        groups: 1,
    });
    assert_eq!(too_large(&g), ("c1".into(), "an attribute"));
    // An input of 2^40 values a sample.
    let mut g = residual();
    g.input_shape = vec![4, 1 << 20, 1 << 20];
    assert_eq!(too_large(&g), (INPUT.into(), "the input"));
    // Within every attribute bound, a dense layer of 2^24 x 2^24 weights.
    let mut g = residual();
    g.input_shape = vec![1 << 16, 16, 16];
    g.nodes = vec![
        Node::new("flat", Op::Flatten, &[INPUT]),
        Node::new("fc", Op::Dense { units: 1 << 24 }, &["flat"]),
    ];
    g.output = "fc".into();
    assert_eq!(too_large(&g), ("fc".into(), "the parameters"));
    // A padded output of 2^16 x 2^24 x 2^24 values.
    let mut g = residual();
    g.input_shape = vec![1 << 16, 1, 1];
    g.nodes = vec![Node::new(
        "pad",
        Op::Pad {
            pads: [1 << 23, 1 << 23, 1 << 23, 1 << 23],
        },
        &[INPUT],
    )];
    g.output = "pad".into();
    assert_eq!(too_large(&g), ("pad".into(), "its output"));
}
