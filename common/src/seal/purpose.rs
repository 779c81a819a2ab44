//! [`Purpose`]: what an envelope is for, the first field its header authenticates.

/// What an envelope is for; part of the authenticated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Purpose {
    /// A data owner's share upload (explicit share for the leader, a seed for a helper).
    Upload = 1,
    /// A server's share of a result, for the output receiver.
    Result = 2,
    /// A frame on a server-to-server peer stream.
    Peer = 3,
    /// A control message (job start, status) from the model owner.
    Control = 4,
    /// An input shared into an MPC computation.
    Input = 5,
    /// A token that authenticates a read request (see [`crate::request`]).
    Request = 6,
    /// A data owner's notice to the leader (it cannot take part in a job: see
    /// [`crate::notice`]).
    Notice = 7,
    /// A server's share of an MPC job's output, for its receiver: a domain apart from
    /// federated results (`Result`), whose job ids and rounds come from another space.
    Output = 8,
    /// An MPC job's launch or abort: a domain apart from the federated jobs' `Control`.
    JobControl = 9,
}

impl Purpose {
    pub(super) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Purpose::Upload,
            2 => Purpose::Result,
            3 => Purpose::Peer,
            4 => Purpose::Control,
            5 => Purpose::Input,
            6 => Purpose::Request,
            7 => Purpose::Notice,
            8 => Purpose::Output,
            9 => Purpose::JobControl,
            _ => return None,
        })
    }
}
