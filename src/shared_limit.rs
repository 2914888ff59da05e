//! Rate limits shared by every instance through Redis (docs/deployment.md): GCRA, the
//! algorithm of the local limiters, run by one Lua script per check on Redis's clock (the
//! approach of redis-gcra and go-redis's redis_rate), so N instances enforce one limit with
//! the same headers. When Redis is unreachable or slower than its timeout, the check answers
//! `None` and the caller uses its local limiter: logged once per outage, counted in
//! `leadgraph_rate_limit_fallbacks_total`, never an error for the client; it recovers by
//! itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::rate_limit::{Budget, Decision, Rate};

/// GCRA over one key: `KEYS[1]` holds the theoretical arrival time (TAT, microseconds);
/// `ARGV[1]` is the burst, `ARGV[2]` the emission interval (microseconds per request).
/// Returns `{allowed, remaining, retry_after_us, reset_us}`.
const GCRA: &str = r#"
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
local diff = now - allow_at
if diff < 0 then
  return {0, 0, -diff, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor(diff / interval), 0, new_tat - now}
"#;

/// How long a failed connection attempt keeps the next one from being made.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// The Redis side of the limits.
pub struct SharedLimiter {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    connection: tokio::sync::Mutex<(Option<ConnectionManager>, Option<Instant>)>,
    down: AtomicBool,
    /// Checks answered by the local limiter because Redis could not.
    pub fallbacks: AtomicU64,
}

impl std::fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimiter").finish_non_exhaustive()
    }
}

impl SharedLimiter {
    /// A limiter on the Redis at `url` (checked for form only: Redis may come up later).
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis-url: {e}"))?;
        Ok(SharedLimiter {
            client,
            prefix: prefix.to_owned(),
            timeout,
            script: redis::Script::new(GCRA),
            connection: tokio::sync::Mutex::new((None, None)),
            down: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Counts a request against `key` at `rate`; `None` when Redis did not answer in time.
    pub async fn check(&self, key: &str, rate: Rate) -> Option<Decision> {
        let answer = tokio::time::timeout(self.timeout, self.run(key, rate)).await;
        match answer {
            Ok(Ok(reply)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared again");
                }
                Some(decision(reply, rate))
            }
            Ok(Err(e)) => self.fell_back(&e.to_string()),
            Err(_) => self.fell_back("no answer within --redis-timeout-ms"),
        }
    }

    fn fell_back(&self, why: &str) -> Option<Decision> {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %why, "Redis unreachable: rate limits are counted per instance until it answers");
        }
        None
    }

    async fn run(&self, key: &str, rate: Rate) -> redis::RedisResult<Vec<i64>> {
        let mut conn = self.connection().await?;
        let interval = (60_000_000 / u64::from(rate.per_minute.max(1))).max(1);
        self.script
            .key(format!("{}{key}", self.prefix))
            .arg(rate.burst)
            .arg(interval)
            .invoke_async(&mut conn)
            .await
    }

    /// The shared connection, made on first use and again (at most every second) after a
    /// failed attempt; the manager itself reconnects a connection that broke.
    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let mut held = self.connection.lock().await;
        if let Some(c) = &held.0 {
            return Ok(c.clone());
        }
        if held.1.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "Redis was unreachable a moment ago",
            )));
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(c) => {
                held.0 = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                held.1 = Some(Instant::now());
                Err(e)
            }
        }
    }
}

fn decision(reply: Vec<i64>, rate: Rate) -> Decision {
    let at = |i: usize| reply.get(i).copied().unwrap_or(0).max(0) as u64;
    let secs = |us: u64| us.div_ceil(1_000_000);
    let budget = Budget {
        limit: rate.per_minute,
        remaining: u32::try_from(at(1)).unwrap_or(u32::MAX).min(rate.burst),
        reset: secs(at(3)),
    };
    if at(0) == 1 {
        Decision::Allowed(budget)
    } else {
        Decision::Refused(budget, secs(at(2)).max(1))
    }
}
