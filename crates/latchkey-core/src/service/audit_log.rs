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
        self.record(self.audit_event(kind, outcome, user_id, session_id, from))
            .await;
    }

    /// The event, happening now, of one request from `from`.
    pub(super) fn audit_event(
        &self,
        kind: AuditKind,
        outcome: Outcome,
        user_id: Option<Uuid>,
        session_id: Option<Uuid>,
        from: &Origin,
    ) -> AuditEvent {
        AuditEvent {
            at: self.clock.now(),
            kind,
            outcome,
            user_id,
            session_id,
            ip: from.ip.clone(),
            count: 1,
            request_id: from.request_id.clone(),
            actor: None,
        }
    }

    pub(super) async fn record(&self, event: AuditEvent) {
        record(&*self.store, event).await;
    }

    /// The audit event of a successful refresh of `session`.
    pub(super) fn refresh_event(&self, session: &Session, from: &Origin) -> AuditEvent {
        self.audit_event(
            AuditKind::Refresh,
            Outcome::Success,
            Some(session.user_id),
            Some(session.id),
            from,
        )
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
