//! Runs Argon2 on a bounded pool (one job per core), so a burst of sign-ins
//! queues for hashing instead of occupying every runtime thread and starving
//! refreshes and bearer checks.

use std::sync::Arc;

use async_trait::async_trait;
use latchkey_core::password::{Argon2Hashing, Password, PasswordCheck, PasswordHasher};
use latchkey_core::AuthError;
use tokio::sync::Semaphore;

pub struct HashingPool {
    hashing: Arc<Argon2Hashing>,
    permits: Semaphore,
}

impl HashingPool {
    pub fn new(hashing: Argon2Hashing, size: usize) -> Self {
        Self {
            hashing: Arc::new(hashing),
            permits: Semaphore::new(size.max(1)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2Hashing) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuthError::Internal("hashing pool closed".into()))?;
        let hashing = self.hashing.clone();
        tokio::task::spawn_blocking(move || job(&hashing))
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))
    }
}

#[async_trait]
impl PasswordHasher for HashingPool {
    async fn hash(&self, password: Password) -> Result<String, AuthError> {
        self.run(move |h| h.hash(&password)).await?
    }

    async fn verify(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<PasswordCheck, AuthError> {
        self.run(move |h| h.verify(&password, phc.as_deref())).await
    }
}
