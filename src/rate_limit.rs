//! Rate limits (docs/limits.md) with governor's GCRA: per tenant and environment by plan, per
//! client IP, and failed logins per account. The HTTP layers that apply them to requests are
//! in `layers/limit.rs`. Limits are per process.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use entity::enums::{Environment, Plan};
use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::principal::Principal;
use crate::config::Config;
use crate::error::AppError;

/// The limiter's clock: real time, or frozen and advanced by hand (tests).
#[derive(Debug, Clone)]
pub struct Clock {
    base: Instant,
    /// `u64::MAX` while running; otherwise the frozen time in nanoseconds since `base`.
    frozen: Arc<AtomicU64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            base: Instant::now(),
            frozen: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        match self.frozen.load(Ordering::SeqCst) {
            u64::MAX => Nanos::from(self.base.elapsed()),
            n => Nanos::from(n),
        }
    }
}

impl Clock {
    /// Stops time (for deterministic tests).
    pub fn freeze(&self) {
        let now = self.base.elapsed().as_nanos() as u64;
        let _ = self
            .frozen
            .compare_exchange(u64::MAX, now, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Moves frozen time forward.
    pub fn advance(&self, by: Duration) {
        self.frozen
            .fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, Clock, StateInformationMiddleware>;
type TenantLimiters = Vec<(Plan, Keyed<(i64, Environment)>, Rate)>;

/// A limit: requests per minute and burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

impl Rate {
    /// The plan's rate (enterprise: the operator's).
    pub fn of(plan: Plan, config: &Config) -> Rate {
        let (per_minute, burst) = match plan {
            Plan::Free => (60, 10),
            Plan::Starter => (300, 30),
            Plan::Pro => (1000, 100),
            Plan::Team => (5000, 500),
            Plan::Enterprise => (config.enterprise_rate_limit, config.enterprise_burst),
        };
        Rate {
            per_minute: per_minute.max(1),
            burst: burst.max(1),
        }
    }

    fn quota(self) -> Quota {
        let per_minute = NonZeroU32::new(self.per_minute).unwrap_or(NonZeroU32::MIN);
        Quota::per_minute(per_minute)
            .allow_burst(NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN))
    }

    /// Time to earn one request back.
    fn period(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }
}

/// What a caller has left, for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests per minute.
    pub limit: u32,
    /// Requests that may be sent at once now.
    pub remaining: u32,
    /// Seconds until the budget is full again.
    pub reset: u64,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed(Budget),
    /// `429`: retry after so many seconds.
    Refused(Budget, u64),
}

/// Failed logins an account may have in [`FAILURE_WINDOW`] before its logins are refused.
pub const MAX_LOGIN_FAILURES: u32 = 10;
/// The window failed logins are counted over, from the first of them.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Accounts whose failures are tracked at most; past it new ones are not recorded until the
/// periodic upkeep forgets expired ones, so guesses at ever-new emails cost bounded memory
/// (the per-IP limit still counts them).
const MAX_TRACKED_ACCOUNTS: usize = 100_000;

/// Failed logins per account: `(failures, first failure)` by normalised email.
#[derive(Default)]
struct LoginFailures {
    accounts: std::sync::Mutex<std::collections::HashMap<String, (u32, Nanos)>>,
}

/// Every limiter of the process.
pub struct RateLimits {
    /// The clock all limiters share.
    pub clock: Clock,
    per_ip: Option<(Keyed<IpAddr>, Rate)>,
    tenants: Option<TenantLimiters>,
    login_failures: LoginFailures,
    /// The per-IP and tenant limits counted in Redis (`--redis-url`), shared by instances.
    pub shared: Option<crate::shared_limit::SharedLimiter>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000) as u64
}

impl RateLimits {
    /// The limiters the configuration asks for.
    pub fn new(config: &Config) -> Self {
        let clock = Clock::default();
        fn keyed<K: Clone + std::hash::Hash + Eq>(rate: Rate, clock: &Clock) -> Keyed<K> {
            RateLimiter::new(
                rate.quota(),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            )
        }
        let per_ip = (config.rate_limit_per_ip > 0).then(|| {
            let rate = Rate {
                per_minute: config.rate_limit_per_ip,
                burst: config.rate_limit_per_ip,
            };
            (keyed(rate, &clock), rate)
        });
        let tenants = config.tenant_rate_limits.then(|| {
            Plan::ALL
                .iter()
                .map(|plan| {
                    let rate = Rate::of(*plan, config);
                    (*plan, keyed(rate, &clock), rate)
                })
                .collect()
        });
        RateLimits {
            clock,
            per_ip,
            tenants,
            login_failures: LoginFailures::default(),
            shared: None,
        }
    }

    /// The same limits counted in Redis when `--redis-url` is set.
    pub fn with_redis(mut self, config: &Config) -> Result<Self, String> {
        if let Some(url) = config.redis_url.as_deref().filter(|u| !u.is_empty()) {
            self.shared = Some(crate::shared_limit::SharedLimiter::new(
                url,
                &config.redis_prefix,
                Duration::from_millis(config.redis_timeout_ms.max(1)),
            )?);
        }
        Ok(self)
    }

    /// Counts one more credential check (password, refresh token) of a request against its
    /// IP's budget. The request's own unit, counted by the middleware, covers its first check;
    /// each further one (aliased or batched `login` fields) costs one more.
    pub fn charge_credential_check(&self, rc: &crate::context::RequestCtx) -> Result<(), AppError> {
        if rc.credential_checks.fetch_add(1, Ordering::Relaxed) == 0 {
            return Ok(());
        }
        match rc.ip.and_then(|ip| self.check_ip(ip)) {
            Some(Decision::Refused(_, retry_after)) => Err(AppError::RateLimited { retry_after }),
            _ => Ok(()),
        }
    }

    /// Seconds until `account` may try to log in again, when its failures are used up.
    pub fn login_refused(&self, account: &str) -> Option<u64> {
        let now = self.clock.now();
        let accounts = self.login_failures.accounts.lock().ok()?;
        let (failures, since) = *accounts.get(account)?;
        let elapsed = Duration::from(now.saturating_sub(since));
        (failures >= MAX_LOGIN_FAILURES && elapsed < FAILURE_WINDOW)
            .then(|| ceil_secs(FAILURE_WINDOW - elapsed).max(1))
    }

    /// Records a failed login of `account`.
    pub fn login_failed(&self, account: &str) {
        let now = self.clock.now();
        let Ok(mut accounts) = self.login_failures.accounts.lock() else {
            return;
        };
        if accounts.len() >= MAX_TRACKED_ACCOUNTS && !accounts.contains_key(account) {
            return;
        }
        let entry = accounts.entry(account.to_owned()).or_insert((0, now));
        if Duration::from(now.saturating_sub(entry.1)) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Forgets `account`'s failures after a successful login.
    pub fn login_succeeded(&self, account: &str) {
        if let Ok(mut accounts) = self.login_failures.accounts.lock() {
            accounts.remove(account);
        }
    }

    fn decide<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: &Keyed<K>,
        rate: Rate,
        key: &K,
    ) -> Decision {
        match limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(rate.burst);
                let reset = ceil_secs(rate.period() * (rate.burst - remaining));
                Decision::Allowed(Budget {
                    limit: rate.per_minute,
                    remaining,
                    reset,
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let reset = ceil_secs(rate.period() * rate.burst);
                Decision::Refused(
                    Budget {
                        limit: rate.per_minute,
                        remaining: 0,
                        reset,
                    },
                    ceil_secs(wait).max(1),
                )
            }
        }
    }

    /// Counts a request from `ip`; `None` when the per-IP limit is off.
    pub fn check_ip(&self, ip: IpAddr) -> Option<Decision> {
        self.per_ip
            .as_ref()
            .map(|(l, rate)| self.decide(l, *rate, &ip))
    }

    /// Counts a request of a tenant's environment; `None` when tenant limits are off.
    pub fn check_tenant(&self, p: &Principal) -> Option<Decision> {
        let tenants = self.tenants.as_ref()?;
        let (_, limiter, rate) = tenants.iter().find(|(plan, _, _)| *plan == p.plan)?;
        Some(self.decide(limiter, *rate, &(p.tenant_id, p.environment)))
    }

    /// [`RateLimits::check_ip`], counted in Redis when it is configured and answers.
    pub async fn count_ip(&self, ip: IpAddr) -> Option<Decision> {
        let (_, rate) = self.per_ip.as_ref()?;
        if let Some(shared) = &self.shared
            && let Some(d) = shared.check(&format!("ip:{ip}"), *rate).await
        {
            return Some(d);
        }
        self.check_ip(ip)
    }

    /// [`RateLimits::check_tenant`], counted in Redis when it is configured and answers.
    pub async fn count_tenant(&self, p: &Principal) -> Option<Decision> {
        let tenants = self.tenants.as_ref()?;
        let (_, _, rate) = tenants.iter().find(|(plan, _, _)| *plan == p.plan)?;
        if let Some(shared) = &self.shared {
            let key = format!("tenant:{}:{}", p.tenant_id, p.environment.as_str());
            if let Some(d) = shared.check(&key, *rate).await {
                return Some(d);
            }
        }
        self.check_tenant(p)
    }

    /// Forgets callers whose budget is full again, so memory stays flat.
    pub fn retain_recent(&self) {
        if let Some((l, _)) = &self.per_ip {
            l.retain_recent();
        }
        for (_, l, _) in self.tenants.iter().flatten() {
            l.retain_recent();
        }
        let now = self.clock.now();
        if let Ok(mut accounts) = self.login_failures.accounts.lock() {
            accounts.retain(|_, (_, since)| {
                Duration::from(now.saturating_sub(*since)) < FAILURE_WINDOW
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_ip: u32) -> Config {
        let mut c = Config::defaults();
        c.rate_limit_per_ip = per_ip;
        c.tenant_rate_limits = true;
        c
    }

    #[test]
    fn gcra_budget_over_a_sequence() {
        let limits = RateLimits::new(&config(3));
        limits.clock.freeze();
        let ip: IpAddr = "10.1.2.3".parse().expect("ip");
        let seen: Vec<Decision> = (0..4).filter_map(|_| limits.check_ip(ip)).collect();
        assert_eq!(
            seen,
            [
                Decision::Allowed(Budget {
                    limit: 3,
                    remaining: 2,
                    reset: 20
                }),
                Decision::Allowed(Budget {
                    limit: 3,
                    remaining: 1,
                    reset: 40
                }),
                Decision::Allowed(Budget {
                    limit: 3,
                    remaining: 0,
                    reset: 60
                }),
                Decision::Refused(
                    Budget {
                        limit: 3,
                        remaining: 0,
                        reset: 60
                    },
                    20
                ),
            ]
        );
        // One request comes back every 20 seconds.
        limits.clock.advance(Duration::from_secs(20));
        assert_eq!(
            limits.check_ip(ip),
            Some(Decision::Allowed(Budget {
                limit: 3,
                remaining: 0,
                reset: 60
            }))
        );
        // Other addresses have their own budget.
        assert!(matches!(
            limits.check_ip("10.9.9.9".parse().expect("ip")),
            Some(Decision::Allowed(_))
        ));
    }

    #[test]
    fn plans_have_their_documented_rates() {
        let c = config(0);
        let rates: Vec<(u32, u32)> = Plan::ALL
            .iter()
            .map(|p| Rate::of(*p, &c))
            .map(|r| (r.per_minute, r.burst))
            .collect();
        assert_eq!(
            &rates[..4],
            &[(60, 10), (300, 30), (1000, 100), (5000, 500)]
        );
        assert!(
            RateLimits::new(&c)
                .check_ip("10.0.0.1".parse().expect("ip"))
                .is_none(),
            "0 disables"
        );
    }
}
