//! Recovery and the account's email: the outbox the mail worker empties,
//! the reset and verification tokens, the mail allowance.

use latchkey_core::model::{OutboxKind, OutboxMessage};
use latchkey_core::service::ForgotBy;
use latchkey_core::store::{OutboxStore, UserStore};
use secrecy::ExposeSecret;

use crate::*;

async fn mail_world() -> World {
    World::with(|p| p.mail_enabled = true).await
}

/// The token of the link in a message's plain-text body.
fn token_in(message: &OutboxMessage) -> String {
    let at = message.text_body.find("?token=").expect("a link") + "?token=".len();
    message.text_body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Claims everything due, as the mail worker does; requests are answered
/// on the way, mails are returned (and deleted, as sent).
async fn deliver(w: &World) -> Vec<OutboxMessage> {
    let mut sent = Vec::new();
    loop {
        let (claim, batch) = w.authority.claim_outbox().await.expect("claim");
        if batch.is_empty() {
            return sent;
        }
        for m in batch {
            match m.kind {
                OutboxKind::Mail => {
                    w.authority.mail_sent(&m, claim).await.expect("sent");
                    sent.push(m);
                }
                OutboxKind::PasswordResetRequest => w
                    .authority
                    .answer_outbox_request(&m, claim)
                    .await
                    .expect("answer"),
            }
        }
    }
}

#[tokio::test]
async fn forgot_queues_alike_and_only_verified_addresses_get_a_link() {
    let w = mail_world().await;
    let ann = w
        .authority
        .sign_up("ann", PASSWORD, None, Some("Ann@Example.com"), &from(HOME))
        .await
        .expect("sign up");
    let mails = deliver(&w).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].recipient, "Ann@Example.com");
    assert!(mails[0]
        .text_body
        .contains("https://latchkey.test/account/verify-email?token="));
    // Not verified yet: a reset request is answered with nothing.
    w.clock.advance(61);
    w.authority
        .forgot_password(ForgotBy::Username("ann"))
        .await
        .expect("forgot");
    assert!(deliver(&w).await.is_empty());
    w.authority
        .verify_email(&token_in(&mails[0]), &from(HOME))
        .await
        .expect("verify");
    let stored = w
        .store
        .user_by_id(ann.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(stored.email_verified_at, Some(w.now()));

    // Known and unknown accounts: one queued request each, nothing else.
    for who in [
        ForgotBy::Username("ann"),
        ForgotBy::Username("ghost"),
        ForgotBy::Email("ann@example.com"),
        ForgotBy::Email("nobody@example.com"),
        ForgotBy::Username("ann@example.com"),
    ] {
        let before = w.store.outbox_depth().await.expect("depth");
        w.authority.forgot_password(who).await.expect("forgot");
        assert_eq!(w.store.outbox_depth().await.expect("depth"), before + 1);
    }
    let mails = deliver(&w).await;
    assert_eq!(mails.len(), 1, "ann, once: one mail a minute");
    assert_eq!(mails[0].recipient, "Ann@Example.com");
    assert!(mails[0]
        .text_body
        .contains("/account/reset-password?token="));
    assert_eq!(w.store.outbox_depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn without_mail_nothing_is_queued() {
    let w = World::new().await;
    w.authority
        .sign_up("ann", PASSWORD, None, Some("ann@example.com"), &from(HOME))
        .await
        .expect("sign up");
    w.authority
        .forgot_password(ForgotBy::Username("ann"))
        .await
        .expect("forgot");
    assert_eq!(w.store.outbox_depth().await.expect("depth"), 0);
    assert!(matches!(
        w.authority.forgot_password(ForgotBy::Email("")).await,
        Err(AuthError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn a_reset_checks_the_password_first_and_ends_every_session() {
    let w = World::new().await;
    let ann = w.sign_up("ann").await;
    let before = w.sign_in("ann", PASSWORD).await.expect("sign in");
    let link = w
        .authority
        .password_reset_link(ann.id, latchkey_core::service::RESET_LINK_SECONDS)
        .await
        .expect("link");
    let token = link
        .expose_secret()
        .split_once("?token=")
        .expect("token")
        .1
        .to_owned();
    let origin = from(HOME);
    let reset = |password: &'static str| w.authority.reset_password(&token, password, &origin);
    assert!(matches!(
        reset("short").await,
        Err(AuthError::InvalidRequest(_))
    ));
    reset("a brand new passphrase").await.expect("reset");
    assert!(matches!(
        reset("another new passphrase").await,
        Err(AuthError::InvalidLinkToken)
    ));
    assert!(w.refresh(&before).await.is_err(), "the old session ended");
    assert!(w.sign_in("ann", PASSWORD).await.is_err());
    w.sign_in("ann", "a brand new passphrase")
        .await
        .expect("the new password works");
}

#[tokio::test]
async fn a_failing_mail_backs_off_and_is_given_up_after_ten_attempts() {
    let w = mail_world().await;
    w.authority
        .sign_up("ann", PASSWORD, None, Some("ann@example.com"), &from(HOME))
        .await
        .expect("sign up");
    let mut waits = Vec::new();
    for attempt in 0..10 {
        let (claim, batch) = w.authority.claim_outbox().await.expect("claim");
        assert_eq!(batch.len(), 1, "attempt {attempt}");
        assert_eq!(batch[0].attempts, attempt);
        w.authority
            .mail_failed(&batch[0], claim, "refused")
            .await
            .expect("failed");
        let mut waited = 0;
        while w
            .authority
            .claim_outbox()
            .await
            .expect("claim")
            .1
            .is_empty()
        {
            if w.store.outbox_depth().await.expect("depth") == 0 {
                break;
            }
            w.clock.advance(1);
            waited += 1;
        }
        waits.push(waited);
        // The probe above claimed it: let that claim lapse.
        w.clock
            .advance(latchkey_core::service::OUTBOX_LEASE_SECONDS);
    }
    assert_eq!(&waits[..4], &[5, 10, 20, 40], "exponential backoff");
    assert_eq!(w.store.outbox_depth().await.expect("depth"), 0, "given up");
}
