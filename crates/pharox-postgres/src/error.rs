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
        if client_side(&e) {
            // A value the driver could not encode or decode: nothing was
            // sent (encoding) or the statement ran and its answer does not
            // fit (decoding); either way a retry fails the same way.
            return Error::Backend {
                source: Box::new(e),
            };
        }
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

/// Whether `e` is the driver's own encoding or decoding failure (a
/// parameter of the wrong type, a column that does not convert), not a
/// broken connection. tokio-postgres does not expose its error kinds, only
/// their messages.
fn client_side(e: &tokio_postgres::Error) -> bool {
    let text = e.to_string();
    text.starts_with("error serializing parameter")
        || text.starts_with("error deserializing column")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter of the wrong type fails the same way every time: not
    /// retryable (it was once reported as a maybe-applied `Interrupted`).
    #[tokio::test]
    async fn a_value_the_driver_cannot_encode_is_not_retryable() {
        let (client, connection) =
            tokio_postgres::connect(&crate::testkit::admin_url(), tokio_postgres::NoTls)
                .await
                .expect("the test PostgreSQL answers");
        tokio::spawn(connection);
        let e = client
            .query("SELECT $1::int4", &[&1i64])
            .await
            .expect_err("an i64 for an int4");
        let mapped = query_error(e);
        assert!(matches!(mapped, Error::Backend { .. }), "{mapped:?}");
        assert!(!mapped.is_retryable());
    }

    #[test]
    fn pool_errors_are_retryable_and_not_sent() {
        let e = pool_error(PoolError::Closed);
        assert!(e.is_retryable());
        assert!(e.request_not_sent());
    }
}
