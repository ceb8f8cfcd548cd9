//! Recording audit events: a `latchkey::audit` tracing line and a row in
//! the store for each.

use uuid::Uuid;

use super::{Authority, Origin};
use crate::audit::{AuditEvent, AuditKind, AuditQuery, Outcome};
use crate::model::Session;
use crate::store::AuditStore;
use crate::AuthError;

impl Authority {
    /// Records an audit event. A failure to store it is logged, never the
    /// request's failure (the event itself has already happened).
    pub(super) async fn audit(
        &self,
        kind: AuditKind,
        outcome: Outcome,
        user_id: Option<Uuid>,
        session_id: Option<Uuid>,
        from: &Origin,
    ) {
        self.record(AuditEvent {
            at: self.clock.now(),
            kind,
            outcome,
            user_id,
            session_id,
            ip: from.ip.clone(),
            count: 1,
        })
        .await;
    }

    pub(super) async fn record(&self, event: AuditEvent) {
        record(&*self.store, event).await;
    }

    pub(super) async fn audit_refresh(&self, session: &Session, from: &Origin) {
        self.audit(
            AuditKind::Refresh,
            Outcome::Success,
            Some(session.user_id),
            Some(session.id),
            from,
        )
        .await;
    }

    /// The most recent audit events (see [`AuditQuery`]).
    pub async fn audit_events(
        store: &dyn AuditStore,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, AuthError> {
        Ok(store.audit_events(query).await?)
    }
}

async fn record(store: &dyn AuditStore, event: AuditEvent) {
    event.emit();
    if let Err(e) = store.insert_audit_event(&event).await {
        tracing::warn!(error = %e, kind = event.kind.as_str(), "audit event not stored");
    }
}
