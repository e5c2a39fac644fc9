//! Driver errors as `pharox_core::Error`: what was certainly not applied
//! (`Unavailable`), what may have been (`Interrupted`), and the rest.

use deadpool_postgres::PoolError;
use pharox_core::Error;
use tokio_postgres::error::SqlState;

/// A failure to get a connection: nothing was sent.
pub(crate) fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => Error::Unavailable {
            source: Box::new(e),
        },
        other => Error::Unavailable {
            source: other.to_string().into(),
        },
    }
}

/// A failed statement. The server rolls a failed statement back, so an
/// answer from it means nothing was applied; a lost connection may have
/// applied it or not.
pub(crate) fn query_error(e: tokio_postgres::Error) -> Error {
    let Some(code) = e.code() else {
        // No answer from the server: the connection broke (or was closed)
        // with the request possibly in flight.
        return Error::Interrupted {
            source: Box::new(e),
        };
    };
    if code == &SqlState::T_R_SERIALIZATION_FAILURE
        || code == &SqlState::T_R_DEADLOCK_DETECTED
        || code == &SqlState::LOCK_NOT_AVAILABLE
        || code == &SqlState::TOO_MANY_CONNECTIONS
        || code == &SqlState::CANNOT_CONNECT_NOW
        || code == &SqlState::QUERY_CANCELED
        || code == &SqlState::READ_ONLY_SQL_TRANSACTION
    {
        // Rolled back by the server (or refused before running): retry.
        return Error::Unavailable {
            source: Box::new(e),
        };
    }
    if code.code().starts_with("08")
        || code == &SqlState::ADMIN_SHUTDOWN
        || code == &SqlState::CRASH_SHUTDOWN
    {
        return Error::Interrupted {
            source: Box::new(e),
        };
    }
    Error::Backend {
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_errors_are_retryable_and_not_sent() {
        let e = pool_error(PoolError::Closed);
        assert!(e.is_retryable());
        assert!(e.request_not_sent());
    }
}
