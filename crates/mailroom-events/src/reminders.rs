//! The overdue-reminder schedule: a pure function from open invoices, today, a policy and the reminders already sent to exactly the reminders due now.

use std::collections::HashSet;

use time::Date;

use crate::money::Decimal;

/// An invoice as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenInvoice {
    /// Invoice number; identifies the invoice in the history.
    pub number: String,
    /// Date payment was due.
    pub due_date: Date,
    /// Amount still unpaid; zero or less counts as paid.
    pub amount_due: Decimal,
    /// Whether the invoice has been paid.
    pub paid: bool,
}

/// When reminders go out: at these numbers of days after the due date, e.g. `[1, 7, 14, 30]`.
///
/// ```
/// use mailroom_events::ReminderPolicy;
/// let policy = ReminderPolicy::new([30, 7, 1, 14, 7]).unwrap();
/// assert_eq!(policy.stages(), &[1, 7, 14, 30]);
/// assert!(ReminderPolicy::new([0, 7]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderPolicy {
    stages: Vec<u32>,
}

/// Why a reminder policy was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No stages.
    #[error("the reminder policy has no stages: list the days after the due date, e.g. [1, 7, 14, 30]")]
    NoStages,
    /// A stage of 0 days would remind on the due date, when nothing is overdue yet.
    #[error("reminder stages are days after the due date and start at 1; 0 is the due date itself")]
    ZeroStage,
}

impl ReminderPolicy {
    /// A policy with the given stages (days after the due date, each ≥ 1); order and duplicates do not matter.
    pub fn new(stages: impl IntoIterator<Item = u32>) -> Result<ReminderPolicy, PolicyError> {
        let mut stages: Vec<u32> = stages.into_iter().collect();
        stages.sort_unstable();
        stages.dedup();
        match stages.first() {
            None => Err(PolicyError::NoStages),
            Some(0) => Err(PolicyError::ZeroStage),
            Some(_) => Ok(ReminderPolicy { stages }),
        }
    }

    /// The stages, ascending, without duplicates.
    pub fn stages(&self) -> &[u32] {
        &self.stages
    }

    /// The latest stage reached `days_overdue` days after the due date, if any.
    pub fn latest_stage_reached(&self, days_overdue: i64) -> Option<u32> {
        self.stages.iter().rev().copied().find(|&stage| i64::from(stage) <= days_overdue)
    }
}

impl Default for ReminderPolicy {
    /// 1, 7, 14 and 30 days after the due date.
    fn default() -> ReminderPolicy {
        ReminderPolicy { stages: vec![1, 7, 14, 30] }
    }
}

/// A reminder that was sent: the invoice and the stage.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SentReminder {
    /// Invoice number.
    pub invoice_number: String,
    /// Stage (days after the due date) it was sent for.
    pub stage: u32,
}

/// A reminder to send now.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DueReminder {
    /// Invoice number.
    pub invoice_number: String,
    /// The stage to send (the payload's `reminder_stage`).
    pub stage: u32,
    /// Days between the due date and today.
    pub days_overdue: i64,
}

impl DueReminder {
    /// The history entry to record once this reminder has been sent.
    pub fn as_sent(&self) -> SentReminder {
        SentReminder { invoice_number: self.invoice_number.clone(), stage: self.stage }
    }
}

/// The reminders due `today`, at most one per invoice, in the order of `invoices`.
///
/// For each invoice that is unpaid (not `paid`, `amount_due` above zero) the latest policy
/// stage reached by today is due, unless a reminder for that stage **or a later one** is
/// in `history`.
///
/// Only the latest stage is sent when several are overdue at once (say the ERP was off
/// for three weeks): one message saying "21 days overdue" is right, three messages in a
/// row are noise, and an early, mild stage sent after a sterner one would contradict it.
/// Skipped stages are never sent later. An invoice whose number appears twice in
/// `invoices` is treated as one: paid if either entry says so, otherwise scheduled by its
/// first entry.
///
/// Properties (tested with proptest): no reminder in the output is in `history`;
/// appending the output to `history` and asking again yields nothing; paid invoices never
/// get a reminder.
///
/// ```
/// use mailroom_events::{reminders_due, OpenInvoice, ReminderPolicy, SentReminder};
/// use time::macros::date;
/// let invoices = [OpenInvoice { number: "INV-1".into(), due_date: date!(2026-11-01), amount_due: "90.00".parse().unwrap(), paid: false }];
/// let policy = ReminderPolicy::new([1, 7, 14, 30]).unwrap();
/// let today = date!(2026-11-16); // 15 days overdue: stages 1, 7 and 14 reached
/// let due = reminders_due(&invoices, today, &policy, &[]);
/// assert_eq!((due.len(), due[0].stage), (1, 14));
/// let history = [due[0].as_sent()];
/// assert!(reminders_due(&invoices, today, &policy, &history).is_empty());
/// ```
pub fn reminders_due(
    invoices: &[OpenInvoice],
    today: Date,
    policy: &ReminderPolicy,
    history: &[SentReminder],
) -> Vec<DueReminder> {
    let paid: HashSet<&str> = invoices
        .iter()
        .filter(|invoice| invoice.paid || invoice.amount_due.is_negative() || invoice.amount_due.is_zero())
        .map(|invoice| invoice.number.as_str())
        .collect();
    let mut decided: HashSet<&str> = HashSet::new();
    let mut due = Vec::new();
    for invoice in invoices {
        let number = invoice.number.as_str();
        if paid.contains(number) || !decided.insert(number) {
            continue;
        }
        let days_overdue = (today - invoice.due_date).whole_days();
        let Some(stage) = policy.latest_stage_reached(days_overdue) else {
            continue;
        };
        let already_reminded = history.iter().any(|sent| sent.invoice_number == number && sent.stage >= stage);
        if !already_reminded {
            due.push(DueReminder { invoice_number: invoice.number.clone(), stage, days_overdue });
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    fn invoice(number: &str, due_date: Date, paid: bool) -> OpenInvoice {
        OpenInvoice { number: number.to_owned(), due_date, amount_due: "100.00".parse().unwrap(), paid }
    }

    fn sent(number: &str, stage: u32) -> SentReminder {
        SentReminder { invoice_number: number.to_owned(), stage }
    }

    fn stages_due(due: &[DueReminder]) -> Vec<(&str, u32)> {
        due.iter().map(|d| (d.invoice_number.as_str(), d.stage)).collect()
    }

    #[test]
    fn each_stage_becomes_due_on_its_day() {
        let policy = ReminderPolicy::default();
        let invoices = [invoice("INV-1", date!(2026 - 11 - 01), false)];
        let on = |day: Date| stages_due(&reminders_due(&invoices, day, &policy, &[])).first().map(|(_, s)| *s);
        assert_eq!(on(date!(2026 - 10 - 31)), None, "before the due date");
        assert_eq!(on(date!(2026 - 11 - 01)), None, "on the due date");
        assert_eq!(on(date!(2026 - 11 - 02)), Some(1));
        assert_eq!(on(date!(2026 - 11 - 07)), Some(1));
        assert_eq!(on(date!(2026 - 11 - 08)), Some(7));
        assert_eq!(on(date!(2026 - 12 - 01)), Some(30));
        assert_eq!(on(date!(2027 - 06 - 01)), Some(30), "the last stage stays the latest");
    }

    #[test]
    fn only_the_latest_stage_goes_out_and_earlier_ones_never_follow() {
        let policy = ReminderPolicy::default();
        let invoices = [invoice("INV-1", date!(2026 - 11 - 01), false)];
        let today = date!(2026 - 11 - 20); // 19 days: 1, 7 and 14 reached
        let due = reminders_due(&invoices, today, &policy, &[]);
        assert_eq!(stages_due(&due), [("INV-1", 14)]);
        assert_eq!(due[0].days_overdue, 19);
        // A later stage in the history covers the earlier ones.
        assert!(reminders_due(&invoices, today, &policy, &[sent("INV-1", 14)]).is_empty());
        assert!(reminders_due(&invoices, today, &policy, &[sent("INV-1", 30)]).is_empty());
        // An earlier stage in the history does not.
        assert_eq!(stages_due(&reminders_due(&invoices, today, &policy, &[sent("INV-1", 7)])), [("INV-1", 14)]);
        // Another invoice's history does not count.
        assert_eq!(stages_due(&reminders_due(&invoices, today, &policy, &[sent("INV-2", 14)])), [("INV-1", 14)]);
    }

    #[test]
    fn paid_and_settled_invoices_get_nothing() {
        let policy = ReminderPolicy::default();
        let today = date!(2026 - 12 - 31);
        let mut settled = invoice("INV-2", date!(2026 - 11 - 01), false);
        settled.amount_due = "0.00".parse().unwrap();
        let mut credit = invoice("INV-3", date!(2026 - 11 - 01), false);
        credit.amount_due = "-5".parse().unwrap();
        let invoices = [
            invoice("INV-1", date!(2026 - 11 - 01), true),
            settled,
            credit,
            invoice("INV-4", date!(2026 - 11 - 01), false),
            // The same invoice again, marked paid: paid wins.
            invoice("INV-4", date!(2026 - 11 - 01), true),
            invoice("INV-5", date!(2026 - 12 - 20), false),
            invoice("INV-5", date!(2026 - 12 - 20), false),
        ];
        assert_eq!(stages_due(&reminders_due(&invoices, today, &policy, &[])), [("INV-5", 7)]);
    }

    fn arbitrary_invoices() -> impl Strategy<Value = Vec<OpenInvoice>> {
        let invoice =
            (0u8..6, -60i64..60, -2i64..500, any::<bool>()).prop_map(|(number, due_offset, cents, paid)| OpenInvoice {
                number: format!("INV-{number}"),
                due_date: date!(2026 - 06 - 01) + time::Duration::days(due_offset),
                amount_due: Decimal::new(cents, 2),
                paid,
            });
        proptest::collection::vec(invoice, 0..8)
    }

    fn arbitrary_history() -> impl Strategy<Value = Vec<SentReminder>> {
        let entry = (0u8..6, 1u32..40).prop_map(|(number, stage)| sent(&format!("INV-{number}"), stage));
        proptest::collection::vec(entry, 0..10)
    }

    fn arbitrary_policy() -> impl Strategy<Value = ReminderPolicy> {
        proptest::collection::vec(1u32..40, 1..5).prop_map(|stages| ReminderPolicy::new(stages).unwrap())
    }

    fn is_paid(invoices: &[OpenInvoice], number: &str) -> bool {
        invoices.iter().any(|i| i.number == number && (i.paid || i.amount_due.is_negative() || i.amount_due.is_zero()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn nothing_in_the_output_was_already_sent(
            invoices in arbitrary_invoices(),
            history in arbitrary_history(),
            policy in arbitrary_policy(),
            today_offset in -10i64..120,
        ) {
            let today = date!(2026 - 06 - 01) + time::Duration::days(today_offset);
            let due = reminders_due(&invoices, today, &policy, &history);
            for reminder in &due {
                prop_assert!(!history.contains(&reminder.as_sent()), "{reminder:?} was already sent");
                prop_assert!(
                    !history.iter().any(|s| s.invoice_number == reminder.invoice_number && s.stage >= reminder.stage),
                    "{reminder:?} after a later stage"
                );
                prop_assert!(policy.stages().contains(&reminder.stage));
                prop_assert!(i64::from(reminder.stage) <= reminder.days_overdue);
            }
            let numbers: HashSet<&str> = due.iter().map(|d| d.invoice_number.as_str()).collect();
            prop_assert_eq!(numbers.len(), due.len(), "one reminder per invoice at most");
        }

        #[test]
        fn sending_the_output_leaves_nothing_due(
            invoices in arbitrary_invoices(),
            history in arbitrary_history(),
            policy in arbitrary_policy(),
            today_offset in -10i64..120,
        ) {
            let today = date!(2026 - 06 - 01) + time::Duration::days(today_offset);
            let due = reminders_due(&invoices, today, &policy, &history);
            let mut history = history;
            history.extend(due.iter().map(DueReminder::as_sent));
            prop_assert_eq!(reminders_due(&invoices, today, &policy, &history), vec![]);
        }

        #[test]
        fn paid_invoices_never_get_a_reminder(
            invoices in arbitrary_invoices(),
            history in arbitrary_history(),
            policy in arbitrary_policy(),
            today_offset in -10i64..120,
        ) {
            let today = date!(2026 - 06 - 01) + time::Duration::days(today_offset);
            for reminder in reminders_due(&invoices, today, &policy, &history) {
                prop_assert!(!is_paid(&invoices, &reminder.invoice_number), "{reminder:?} for a paid invoice");
            }
        }

        #[test]
        fn every_unpaid_overdue_invoice_is_covered(
            invoices in arbitrary_invoices(),
            history in arbitrary_history(),
            policy in arbitrary_policy(),
            today_offset in -10i64..120,
        ) {
            // The converse: nothing due is left out. After sending, each unpaid invoice past
            // a stage has the latest reached stage (or a later one) in its history.
            let today = date!(2026 - 06 - 01) + time::Duration::days(today_offset);
            let due = reminders_due(&invoices, today, &policy, &history);
            let mut history = history;
            history.extend(due.iter().map(DueReminder::as_sent));
            // An invoice listed twice is judged by its first entry (see the function's doc).
            let mut seen = HashSet::new();
            let first_entries = invoices.iter().filter(|i| seen.insert(i.number.clone()));
            for invoice in first_entries.filter(|i| !is_paid(&invoices, &i.number)) {
                if let Some(stage) = policy.latest_stage_reached((today - invoice.due_date).whole_days()) {
                    prop_assert!(
                        history.iter().any(|s| s.invoice_number == invoice.number && s.stage >= stage),
                        "{invoice:?} missed stage {stage}"
                    );
                }
            }
        }
    }
}
