//! Compiles `proto/tessera.proto` with the pure-Rust `protox` compiler (no protoc install) and
//! generates the tonic/prost code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tessera.proto");
    let descriptors = protox::compile(["proto/tessera.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
