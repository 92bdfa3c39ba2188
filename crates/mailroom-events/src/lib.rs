//! The ERP event catalogue — being built (issue "ERP event emails").
//!
//! It will hold one typed payload and one default minijinja template (subject, HTML, text)
//! per event kind, money and date formatting per locale, attachments, the overdue-reminder
//! schedule, and deterministic Message-IDs derived from the event.
