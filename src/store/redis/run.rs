//! Running one Redis operation: on the right connection (a large value on its own), within
//! the timeout for its size, through the circuit breaker. Every error it returns names the
//! store (`redis`), the `store` label of its count.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::breaker::Permit;
use super::{LARGE_VALUE, NAME, RedisStore};
use crate::StoreError;

impl RedisStore {
    /// The time an operation carrying `len` bytes of value may take: the timeout, plus `len`
    /// at the minimum throughput.
    pub(super) fn timeout_for(&self, len: usize) -> Duration {
        let nanos = len as u128 * 1_000_000_000 / u128::from(self.inner.min_throughput);
        let transfer = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.inner.timeout.saturating_add(transfer)
    }

    /// Runs `op` on the connection, within the timeout, through the circuit breaker.
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_sized(0, op).await
    }

    /// Runs `op`, which carries a value of `len` bytes, within the timeout for its size,
    /// through the circuit breaker; a large value on the bulk connection, and its timing out
    /// (the transfer was slow, which says little about Redis) is no verdict for the breaker.
    pub(super) async fn run_sized<T, F, Fut>(&self, len: usize, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        let large = len > LARGE_VALUE;
        // Dropped with this future (a cancelled request), a probe counts as failed.
        let Some(permit) = inner.breaker.allow() else {
            return Err(store_error("redis circuit open"));
        };
        let attempt = async {
            let (cell, response_timeout) = if large {
                // No response timeout of its own: each operation has its own, set below.
                (&inner.bulk_connection, None)
            } else {
                (&inner.connection, Some(self.timeout_for(LARGE_VALUE)))
            };
            let connection = cell
                .get_or_try_init(|| {
                    let mut cache = ConnectionManagerConfig::new()
                        .set_connection_timeout(inner.timeout)
                        .set_number_of_retries(1);
                    if let Some(timeout) = response_timeout {
                        cache = cache.set_response_timeout(timeout);
                    }
                    ConnectionManager::new_with_config(inner.client.clone(), cache)
                })
                .await?
                .clone();
            op(connection).await
        };
        match tokio::time::timeout(self.timeout_for(len), attempt).await {
            Ok(Ok(value)) => {
                permit.success();
                Ok(value)
            }
            Ok(Err(error)) if large && error.is_timeout() => {
                Err(self.slow_transfer(permit, store_error(error)))
            }
            Ok(Err(error)) => Err(self.fault(permit, store_error(error))),
            Err(_) if large => Err(self.slow_transfer(
                permit,
                store_error("redis operation on a large value timed out"),
            )),
            Err(_) => Err(self.fault(permit, store_error("redis operation timed out"))),
        }
    }

    fn fault(&self, permit: Permit<'_>, error: StoreError) -> StoreError {
        self.inner.faults.fetch_add(1, Relaxed);
        permit.failure();
        error
    }

    /// A large value's operation timed out: a fault, but no sign that Redis is down.
    fn slow_transfer(&self, permit: Permit<'_>, error: StoreError) -> StoreError {
        self.inner.faults.fetch_add(1, Relaxed);
        permit.inconclusive();
        error
    }
}

/// An error of this store, saying so.
fn store_error(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(source).in_store(NAME)
}
