//! Sending limits: the providers' published rate limits and daily quotas as presets, the `[outbox]` overrides on top, and the pacing that keeps a worker under them.

use std::time::Duration;

use mailroom_core::config::OutboxConfig;
use mailroom_core::{CompanyEmail, Provider, ServiceConfig};
use serde::Serialize;
use tokio::time::Instant;

/// A provider's published sending limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LimitPreset {
    /// The name people know it by.
    pub name: &'static str,
    /// Messages per minute, when the provider caps it.
    pub rate_per_minute: Option<u32>,
    /// Messages per day (UTC), when the provider caps it.
    pub daily_quota: Option<u32>,
}

/// Gmail API as a Google Workspace user: 2,000 messages a day (Workspace sending limits);
/// `messages.send` costs 100 of the 250 quota units a user may spend per second, so 150 a minute.
pub const GMAIL_API: LimitPreset =
    LimitPreset { name: "Gmail API", rate_per_minute: Some(150), daily_quota: Some(2_000) };
/// Gmail SMTP (`smtp.gmail.com`) as a Workspace user: the same 2,000 a day; Google publishes no
/// per-minute figure, 60 a minute stays clear of its burst throttling.
pub const GMAIL_SMTP: LimitPreset =
    LimitPreset { name: "Gmail SMTP", rate_per_minute: Some(60), daily_quota: Some(2_000) };
/// Microsoft 365 SMTP AUTH submission: 30 messages a minute, 10,000 recipients a day.
pub const MICROSOFT_365_SMTP: LimitPreset =
    LimitPreset { name: "Microsoft 365 SMTP", rate_per_minute: Some(30), daily_quota: Some(10_000) };
/// Microsoft Graph `sendMail`: Exchange Online's limits apply (30 a minute, 10,000 recipients a day).
pub const MICROSOFT_GRAPH: LimitPreset =
    LimitPreset { name: "Microsoft Graph", rate_per_minute: Some(30), daily_quota: Some(10_000) };
/// Exchange (EWS): Exchange Online's limits (30 a minute, 10,000 recipients a day); an
/// on-premises server's own limits are its administrator's, so override them in `[outbox]`.
pub const EXCHANGE: LimitPreset =
    LimitPreset { name: "Exchange", rate_per_minute: Some(30), daily_quota: Some(10_000) };
/// Any other SMTP server: no published limit.
pub const UNLIMITED: LimitPreset = LimitPreset { name: "no preset", rate_per_minute: None, daily_quota: None };

/// The preset for a config's service (and, for Web Mail, the provider its server name shows).
///
/// ```
/// use mailroom_outbox::limits::{preset_for, GMAIL_API};
/// # let config = mailroom_core::CompanyEmail::from_toml(r#"
/// # service = "email_services"
/// # email_address = "erp@company.com"
/// # [email_services]
/// # client_id = "1-a.apps.googleusercontent.com"
/// # client_secret = "s"
/// # refresh_token = "r"
/// # "#, &|_| None).unwrap().config;
/// assert_eq!(preset_for(&config), GMAIL_API);
/// ```
pub fn preset_for(config: &CompanyEmail) -> LimitPreset {
    match &config.service {
        ServiceConfig::WebMail(smtp) => match smtp.provider() {
            Some(Provider::Gmail) => GMAIL_SMTP,
            Some(Provider::Office365) => MICROSOFT_365_SMTP,
            _ => UNLIMITED,
        },
        ServiceConfig::Exchange(_) => EXCHANGE,
        ServiceConfig::EmailServices(_) => GMAIL_API,
        ServiceConfig::Graph(_) => MICROSOFT_GRAPH,
        _ => UNLIMITED,
    }
}

/// What one worker runs with: the preset with the `[outbox]` overrides applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SendingLimits {
    /// Which preset the defaults came from.
    pub preset: &'static str,
    /// Messages in flight at once.
    pub concurrency: usize,
    /// Messages per minute, if capped.
    pub rate_per_minute: Option<u32>,
    /// Messages per UTC day, if capped.
    pub daily_quota: Option<u32>,
    /// Attempts before a temporary failure becomes `failed`.
    pub max_attempts: u32,
    /// How long a claim holds.
    #[serde(serialize_with = "as_secs")]
    pub lease: Duration,
}

fn as_secs<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}

/// Default messages in flight per worker.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default attempts before `failed`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Default lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

impl SendingLimits {
    /// The limits for `config`: its provider's preset, then every `[outbox]` key that is set.
    pub fn for_config(config: &CompanyEmail, outbox: &OutboxConfig) -> SendingLimits {
        let preset = preset_for(config);
        SendingLimits {
            preset: preset.name,
            concurrency: outbox.concurrency.map_or(DEFAULT_CONCURRENCY, |c| c as usize),
            rate_per_minute: outbox.rate_per_minute.or(preset.rate_per_minute),
            daily_quota: outbox.daily_quota.or(preset.daily_quota),
            max_attempts: outbox.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            lease: outbox.lease_secs.map_or(DEFAULT_LEASE, |s| Duration::from_secs(u64::from(s))),
        }
    }
}

/// Paces sends evenly: one every `60 s / rate_per_minute`, no bursts, so any minute-long
/// window holds at most `rate_per_minute` sends from this worker.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(rate_per_minute: Option<u32>) -> Pacer {
        let interval = rate_per_minute.filter(|r| *r > 0).map(|rate| Duration::from_secs(60) / rate);
        Pacer { interval, next: None }
    }

    pub(crate) fn is_paced(&self) -> bool {
        self.interval.is_some()
    }

    /// Waits for the next slot and books it.
    pub(crate) async fn wait_turn(&mut self) {
        let Some(interval) = self.interval else { return };
        let now = Instant::now();
        let slot = self.next.map_or(now, |next| next.max(now));
        tokio::time::sleep_until(slot).await;
        self.next = slot.checked_add(interval);
    }

    /// The send booked by the last [`Pacer::wait_turn`] starts now (after its claim was
    /// written, which can take a while on a busy disk): the next one waits a full interval
    /// from here, so sends, not bookings, are spaced.
    pub(crate) fn started_now(&mut self) {
        let Some(interval) = self.interval else { return };
        let from_now = Instant::now().checked_add(interval);
        self.next = match (self.next, from_now) {
            (Some(booked), Some(from_now)) => Some(booked.max(from_now)),
            (booked, from_now) => booked.or(from_now),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_sends_by_the_interval() {
        let mut pacer = Pacer::new(Some(120));
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait_turn().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(2_000));
        // A send that started late (a slow claim) pushes the next one back a full interval.
        tokio::time::advance(Duration::from_millis(1_700)).await;
        pacer.started_now();
        let late = Instant::now();
        pacer.wait_turn().await;
        assert_eq!(late.elapsed(), Duration::from_millis(500));
        let mut free = Pacer::new(None);
        free.wait_turn().await;
        assert!(!free.is_paced());
    }
}
