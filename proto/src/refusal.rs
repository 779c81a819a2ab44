//! A service's refusal over gRPC, the same way for both services (secure aggregation's
//! `ServiceError`, the job service's `MpcServiceError`): the status carries the variant's stable
//! name ([`Refusal::name`]) in the [`REFUSAL_KEY`] metadata, and a client rebuilds the same
//! enum's `Remote` variant from it ([`Refusal::remote`]). A status without the key (a front that
//! failed before the service answered, a proxy) is the transport's failure, never a refusal.

use tessera_common::refusal::Refusal;
use tonic::{Code, Status};

/// The metadata key a server's refusal names its variant under.
pub const REFUSAL_KEY: &str = "tessera-refusal";

/// The gRPC status `code` of `refusal`: its message, and its variant's name under
/// [`REFUSAL_KEY`].
pub fn refusal_status<E: Refusal>(code: Code, refusal: &E) -> Status {
    let mut status = Status::new(code, refusal.to_string());
    if let Ok(value) = refusal.name().parse() {
        status.metadata_mut().insert(REFUSAL_KEY, value);
    }
    status
}

/// The refusal `status` names, as `E`'s `Remote` variant: `None` if it names none, or a name
/// `E` does not give.
pub fn refusal_of<E: Refusal>(status: &Status) -> Option<E> {
    let name = status.metadata().get(REFUSAL_KEY)?.to_str().ok()?;
    E::remote(name, status.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::refusal::ServiceError;

    #[test]
    fn a_refusal_comes_back_as_its_variant_name() {
        let sent = ServiceError::UnknownJob(7);
        let status = refusal_status(Code::NotFound, &sent);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            refusal_of::<ServiceError>(&status),
            Some(ServiceError::Remote {
                reason: "unknown_job",
                message: sent.to_string(),
            })
        );
        // A status without the key, or with a name the enum does not give, is no refusal.
        assert_eq!(refusal_of::<ServiceError>(&Status::not_found("x")), None);
        let mut forged = Status::invalid_argument("x");
        forged
            .metadata_mut()
            .insert(REFUSAL_KEY, "no_such_variant".parse().unwrap());
        assert_eq!(refusal_of::<ServiceError>(&forged), None);
    }

    #[test]
    fn every_name_comes_back_as_itself() {
        for name in ServiceError::NAMES {
            let back = ServiceError::remote(name, String::new()).unwrap();
            assert_eq!(back.name(), *name);
        }
    }
}
