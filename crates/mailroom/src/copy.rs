//! Test copies of an event: the event's data pointed at another recipient, so a person sees exactly what a customer would get without the customer getting it.

use mailroom_core::Mailbox;
use serde_json::{Value, json};

/// Points the event's recipient at `to` (dropping Cc), so a test send shows what the customer
/// would see. The redirected copy gets its own Message-ID (through `event_id`): sharing the
/// real send's ID would let a mailbox or an idempotency log treat the real send, later, as a
/// duplicate of the test.
///
/// ```
/// let to: mailroom_core::Mailbox = "me@company.com".parse().unwrap();
/// let data = r#"{"event_id": "INV-1", "recipient": {"name": "Ada", "email": "ada@example.com", "cc": ["b@example.com"]}}"#;
/// let copy: serde_json::Value = serde_json::from_str(&mailroom::redirect_event(data, &to).unwrap()).unwrap();
/// assert_eq!(copy["recipient"]["email"], "me@company.com");
/// assert_eq!(copy["recipient"]["cc"], serde_json::json!([]));
/// assert_eq!(copy["event_id"], "INV-1 redirected to me@company.com");
/// ```
pub fn redirect_event(data: &str, to: &Mailbox) -> Result<String, String> {
    let mut value: Value = serde_json::from_str(data).map_err(|e| format!("the event data is not JSON: {e}"))?;
    let object = value.as_object_mut().ok_or("the event data is not a JSON object")?;
    let event_id = match object.get("event_id").and_then(Value::as_str) {
        Some(id) => format!("{id} redirected to {}", to.email),
        None => format!("redirected to {}", to.email),
    };
    object.insert("event_id".into(), json!(event_id));
    let recipient =
        value.get_mut("recipient").and_then(Value::as_object_mut).ok_or("the event data has no recipient object")?;
    recipient.insert("email".into(), json!(to.email.to_string()));
    recipient.insert("cc".into(), json!([]));
    Ok(value.to_string())
}
