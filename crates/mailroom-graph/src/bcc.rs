//! Bcc for the MIME form: Graph reads recipients from the headers only, so envelope recipients the To/Cc headers do not show travel as a `Bcc:` field in front of the unchanged bytes.

use mailroom_core::OutgoingMessage;

/// The bytes to send: the message unchanged, preceded by a `Bcc:` field when the envelope
/// has recipients the To/Cc headers do not show (Exchange removes the field before delivery).
/// Core's [`OutgoingMessage::bytes_with_bcc_field`], shared with the Gmail driver.
pub(crate) fn mime_with_bcc(message: &OutgoingMessage) -> Vec<u8> {
    message.bytes_with_bcc_field()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_core::MessageDraft;

    #[test]
    fn bcc_recipients_become_a_bcc_field_and_the_rest_is_unchanged() {
        let sender: mailroom_core::Mailbox = "Company ERP <erp@company.com>".parse().unwrap();
        let plain = MessageDraft::new(sender.clone())
            .to("a@example.com".parse().unwrap())
            .subject("s")
            .text("t")
            .build()
            .unwrap();
        assert_eq!(mime_with_bcc(&plain), plain.bytes());
        let hidden = MessageDraft::new(sender)
            .to("a@example.com".parse().unwrap())
            .bcc("hidden@example.com".parse().unwrap())
            .subject("s")
            .text("t")
            .build()
            .unwrap();
        let sent = mime_with_bcc(&hidden);
        assert!(sent.starts_with(b"Bcc: hidden@example.com\r\n"));
        assert!(sent.ends_with(hidden.bytes()));
    }
}
