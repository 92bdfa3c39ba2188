//! Deterministic Message-IDs: the same event always gets the same id, so a retried send can be recognised (by us, by the server, by the recipient's client).

use sha2::{Digest, Sha256};

use crate::kind::EventKind;

/// Bumped only if the hashed input ever has to change; changing it re-identifies every event.
const SCHEME: &str = "mailroom-events/1";

/// The Message-ID for an event: `<{kind}.{hash}@{sender_domain}>`, where the hash is the first
/// 128 bits of SHA-256 over the kind, document number, reminder stage and event id.
///
/// The recipient is deliberately not part of it: the id names the event, and the same
/// event re-sent (even to a corrected address) is the same message.
///
/// ```
/// use mailroom_events::{EventKind, message_id_for};
/// let kind = EventKind::OverdueInvoiceReminder;
/// let first = message_id_for(kind, "INV-1001", Some(7), None, "company.com");
/// assert_eq!(first, message_id_for(kind, "INV-1001", Some(7), None, "company.com"));
/// assert_ne!(first, message_id_for(kind, "INV-1001", Some(14), None, "company.com"));
/// assert!(first.starts_with("<overdue-invoice-reminder.") && first.ends_with("@company.com>"));
/// ```
pub fn message_id_for(
    kind: EventKind,
    document_number: &str,
    stage: Option<u32>,
    event_id: Option<&str>,
    sender_domain: &str,
) -> String {
    let mut hasher = Sha256::new();
    // Each part is length-prefixed so no two different inputs hash the same bytes
    // ("INV-1|2" vs "INV-12|").
    let stage = stage.map(|s| s.to_string());
    for part in [Some(SCHEME), Some(kind.as_str()), Some(document_number), stage.as_deref(), event_id] {
        match part {
            Some(text) => {
                hasher.update(b"+");
                hasher.update((text.len() as u64).to_be_bytes());
                hasher.update(text.as_bytes());
            }
            None => hasher.update(b"-"),
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    // An internationalised domain goes in its ASCII (punycode) form: a Message-ID is ASCII,
    // and the message builder writes the sender's address the same way.
    let domain = match url::Host::parse(sender_domain) {
        Ok(url::Host::Domain(ascii)) if !sender_domain.is_ascii() => ascii,
        _ => sender_domain.to_owned(),
    };
    format!("<{}.{hex}@{domain}>", kind.as_str().replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_event_changes_the_id() {
        let kind = EventKind::OverdueInvoiceReminder;
        let base = message_id_for(kind, "INV-1", Some(7), None, "company.com");
        let variants = [
            message_id_for(EventKind::InvoicePaymentLink, "INV-1", Some(7), None, "company.com"),
            message_id_for(kind, "INV-2", Some(7), None, "company.com"),
            message_id_for(kind, "INV-1", Some(14), None, "company.com"),
            message_id_for(kind, "INV-1", None, None, "company.com"),
            message_id_for(kind, "INV-1", Some(7), Some("retry-batch-2"), "company.com"),
        ];
        for variant in &variants {
            assert_ne!(&base, variant);
        }
        assert_ne!(
            message_id_for(kind, "INV-17", None, None, "c.com"),
            message_id_for(kind, "INV-1", Some(7), None, "c.com"),
        );
        let other_domain = message_id_for(kind, "INV-1", Some(7), None, "erp.example");
        assert_eq!(base.split('@').next(), other_domain.split('@').next(), "the domain only places the id");
    }

    #[test]
    fn an_internationalised_sender_domain_is_written_in_ascii() {
        let id = message_id_for(EventKind::UserNotification, "N-1", None, None, "b\u{fc}cher.example");
        assert!(id.ends_with("@xn--bcher-kva.example>"), "{id}");
    }

    #[test]
    fn the_id_is_a_well_formed_msg_id() {
        let id = message_id_for(EventKind::UserNotification, "Notiz äöü 42 <x>", None, None, "company.com");
        assert!(id.is_ascii() && !id.contains(char::is_whitespace));
        assert_eq!(id.matches('@').count(), 1);
        let local = id.trim_start_matches('<').split('@').next().unwrap();
        assert_eq!(local.len(), "user-notification.".len() + 32);
    }
}
