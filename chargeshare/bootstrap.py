"""The one composition root: configuration -> adapters -> services.

The server, the simulator and the tests all build the system here, so they run the same code.
Embedded default (no configuration): SQLite + fakeredis + simulated payments + in-process events.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from chargeshare.adapters.durability import ImmediateDurability, durability_for
from chargeshare.adapters.grid_signals_sim import SimulatedGridSignals
from chargeshare.adapters.last_seen import WriteBehindLastSeen
from chargeshare.adapters.memory_store import MEMORY_URL, MemoryStore
from chargeshare.adapters.payments_sim import MemoryBooks, SimulatedGateway, SqlBooks
from chargeshare.adapters.redis_locks import NoLocks, RedisLocks
from chargeshare.adapters.redis_namespace import namespace_for
from chargeshare.adapters.redis_rate_limits import RedisBuckets
from chargeshare.adapters.redis_slot_claims import MemorySlotClaims, RedisSlotClaims
from chargeshare.adapters.shared_clock import ENV as SIM_CLOCK_ENV
from chargeshare.adapters.shared_clock import ClockFileError, FollowedClock
from chargeshare.adapters.sql import SqlStore
from chargeshare.adapters.sql.store import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from chargeshare.adapters.stripe_gateway import DEFAULT_NETWORK_RETRIES, DEFAULT_TIMEOUT_S, StripeGateway
from chargeshare.domain.platform_reporting import RelevantActivity, ReportingRules
from chargeshare.domain.rate_limit import Limit
from chargeshare.services.auth import AuthService
from chargeshare.services.booking import BookingService
from chargeshare.services.charger_files import ChargerFilesService
from chargeshare.services.charger_reports import ChargerReportsService
from chargeshare.services.charging import ChargingService
from chargeshare.services.clock import Clock, SystemClock
from chargeshare.services.events import InProcessBus, MessageBus
from chargeshare.services.fleet import FleetService
from chargeshare.services.grid import GridService
from chargeshare.services.grid_settlement import GridSettlementService
from chargeshare.services.hosting import HostingService
from chargeshare.services.housekeeping import Housekeeping
from chargeshare.services.marketplace import MarketplaceService
from chargeshare.services.owed_commands import prune_failures
from chargeshare.services.passwords import DEFAULT_QUEUE, BoundedPasswords, default_workers, password_hasher
from chargeshare.services.platform_reporting import PlatformReportingService
from chargeshare.services.ports import (
    CertificateAuthority,
    Durability,
    LastSeen,
    LockManager,
    PaymentGateway,
    RedisClient,
    SlotClaims,
    Store,
)
from chargeshare.services.pricing import PricingService
from chargeshare.services.queries import Queries
from chargeshare.services.rate_limits import ApiLimits, RateLimiter
from chargeshare.services.rules import MarketplaceRules
from chargeshare.services.settlement import SettlementService
from chargeshare.services.smart_charging import SmartChargingService
from chargeshare.services.tokens import TokenService
from chargeshare.services.v2g import V2gService

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///chargeshare.db"
MEMORY_DATABASE_URL = "sqlite://"


class ConfigError(Exception):
    """The configuration asks for something that cannot be built; the message says what to change."""


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None  # None: in-process fakeredis
    # Each Redis call gives up after this long: locks and slot claims then leave the database to decide.
    redis_timeout_s: float = 1.0
    locks_enabled: bool = True
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None  # a Stripe-compatible server (tests, local stand-ins)
    # Each Stripe call gives up after this long, unretried: the payments outbox retries the step.
    stripe_timeout_s: float = DEFAULT_TIMEOUT_S
    stripe_max_network_retries: int = DEFAULT_NETWORK_RETRIES
    # A statement waits at most this long for a lock (SQLite: the busy timeout), and runs at most the
    # statement timeout (PostgreSQL; 0: no limit); past either, the request is answered "busy".
    db_lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    db_statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    allow_unknown_chargers: bool = False
    # OCPP security profile 3: the certificate authority's directory (`chargeshare ca init`); chargers
    # may then present its certificates instead of passwords, and SignCertificate is answered.
    ca_dir: Path | None = None
    # Where chargers reach this backend over HTTP (firmware downloads, log uploads); None: the
    # address the operator's request used.
    public_url: str | None = None
    rules: MarketplaceRules = field(default_factory=MarketplaceRules)
    # Signs access tokens. Without CHARGESHARE_JWT_SECRET each process makes up its own, so tokens
    # last until it restarts and work on that process only: set it when running more than one.
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    token_minutes: int = 60
    password_hash: str = "standard"  # argon2 profile: standard, or fast for throw-away accounts
    # Password hashes at once, and how many more may wait for a turn before sign-ups and logins are
    # answered 503: each standard hash holds 64 MiB, and a waiting request holds a request thread.
    hash_workers: int = field(default_factory=default_workers)
    hash_queue: int = DEFAULT_QUEUE
    limits: ApiLimits = field(default_factory=ApiLimits)
    # HMRC digital platform reporting: what hosts sell for the rules, and the de minimis thresholds.
    reporting: ReportingRules = field(default_factory=ReportingRules)
    # Seeds the simulated grid's carbon intensity and weather that dynamic prices read.
    grid_seed: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "database_url": env.get("CHARGESHARE_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "redis_url": env.get("CHARGESHARE_REDIS_URL") or None,
            "locks_enabled": env.get("CHARGESHARE_LOCKS", "on").lower() not in ("off", "0", "false"),
            "stripe_api_key": env.get("CHARGESHARE_STRIPE_API_KEY") or None,
            "stripe_api_base": env.get("CHARGESHARE_STRIPE_API_BASE") or None,
            "ca_dir": Path(env["CHARGESHARE_CA_DIR"]) if env.get("CHARGESHARE_CA_DIR") else None,
            "public_url": env.get("CHARGESHARE_PUBLIC_URL") or None,
        }
        values.update(_auth_settings(env))
        values.update(_limit_settings(env))
        values.update(_timeout_settings(env))
        values.update(_reporting_settings(env))
        values.update(_grid_settings(env))
        rules = _rule_settings(env)
        if rules:
            values["rules"] = MarketplaceRules(**rules)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _rule_settings(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fee = env.get("CHARGESHARE_PLATFORM_FEE_BPS")
    if fee is not None:
        try:
            out["platform_fee_bps"] = int(fee)
        except ValueError as exc:
            raise ConfigError(f"CHARGESHARE_PLATFORM_FEE_BPS must be an integer, got {fee!r}") from exc
    # How long a dead process's payment step or hold placement is waited for before another takes it
    # over: short in crash tests, which would otherwise wait minutes for a restart to recover.
    for name, key in (
        ("CHARGESHARE_PAYMENT_LEASE_S", "payment_lease_s"),
        ("CHARGESHARE_HOLD_PLACEMENT_TIMEOUT_S", "hold_placement_timeout_s"),
        ("CHARGESHARE_SLOT_CLAIM_PENDING_S", "slot_claim_pending_s"),
        ("CHARGESHARE_METER_SAMPLE_INTERVAL_S", "meter_sample_interval_s"),
        # A simulation's fast clock stretches what waits on real work in flight (see simulators.live).
        ("CHARGESHARE_PAST_START_TOLERANCE_S", "past_start_tolerance_s"),
        ("CHARGESHARE_REPLAY_WINDOW_S", "replay_window_s"),
        ("CHARGESHARE_LOST_STOP_GRACE_S", "lost_stop_grace_s"),
        ("CHARGESHARE_COMMAND_RESEND_AFTER_S", "command_resend_after_s"),
        ("CHARGESHARE_COMMAND_BACKOFF_FIRST_S", "command_backoff_first_s"),
        ("CHARGESHARE_COMMAND_BACKOFF_CAP_S", "command_backoff_cap_s"),
        ("CHARGESHARE_QUOTE_HOLD_S", "quote_hold_s"),
        ("CHARGESHARE_QUOTE_RETENTION_S", "quote_retention_s"),
    ):
        value = env.get(name)
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"{name} must be a whole number of seconds, at least 1, got {value!r}")
            out[key] = int(value)
    return out


def _grid_settings(env: Mapping[str, str]) -> dict[str, Any]:
    seed = env.get("CHARGESHARE_GRID_SEED")
    if seed is None:
        return {}
    try:
        return {"grid_seed": int(seed)}
    except ValueError as exc:
        raise ConfigError(f"CHARGESHARE_GRID_SEED must be an integer, got {seed!r}") from exc


def _reporting_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """CHARGESHARE_DPI_ACTIVITY (property or goods) and the de minimis thresholds, which apply to a
    seller of goods only (see domain.platform_reporting)."""
    activity = env.get("CHARGESHARE_DPI_ACTIVITY")
    changes: dict[str, Any] = {}
    if activity:
        try:
            changes["activity"] = RelevantActivity(activity)
        except ValueError:
            raise ConfigError(
                f"CHARGESHARE_DPI_ACTIVITY must be property or goods, got {activity!r}"
            ) from None
    for name, key in (
        ("CHARGESHARE_DPI_DE_MINIMIS_ACTIVITIES", "de_minimis_activities"),
        ("CHARGESHARE_DPI_DE_MINIMIS_PENCE", "de_minimis_consideration"),
    ):
        value = env.get(name)
        if value:
            if not value.isdigit():
                raise ConfigError(f"{name} must be a whole number, 0 or more, got {value!r}")
            changes[key] = int(value)
    return {"reporting": ReportingRules(**changes)} if changes else {}


def clock_from_env(env: Mapping[str, str] | None = None) -> Clock:
    """The system clock; or, in a backend a simulation started, the simulation's clock
    (CHARGESHARE_SIM_CLOCK, see adapters.shared_clock)."""
    env = os.environ if env is None else env
    setting = env.get(SIM_CLOCK_ENV)
    if not setting:
        return SystemClock()
    try:
        return FollowedClock.from_setting(setting)
    except ClockFileError as exc:
        raise ConfigError(str(exc)) from exc


def _limit_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """CHARGESHARE_SIGNUPS_PER_MINUTE: sign-ups per address and minute, or "off" for a simulation
    that signs a fleet of drivers up from one address."""
    value = env.get("CHARGESHARE_SIGNUPS_PER_MINUTE")
    if not value:
        return {}
    if value == "off":
        return {"limits": replace(ApiLimits(), signup_per_address=None)}
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"CHARGESHARE_SIGNUPS_PER_MINUTE must be off or a whole number of at least 1, got {value!r}"
        )
    n = int(value)
    return {"limits": replace(ApiLimits(), signup_per_address=Limit(burst=n, per_minute=n))}


def _auth_settings(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    secret = env.get("CHARGESHARE_JWT_SECRET")
    if secret:
        if len(secret) < 32:
            raise ConfigError("CHARGESHARE_JWT_SECRET must be at least 32 characters")
        out["jwt_secret"] = secret
    minutes = env.get("CHARGESHARE_TOKEN_MINUTES")
    if minutes:
        if not minutes.isdigit() or int(minutes) < 1:
            raise ConfigError(f"CHARGESHARE_TOKEN_MINUTES must be a whole number of minutes, got {minutes!r}")
        out["token_minutes"] = int(minutes)
    profile = env.get("CHARGESHARE_PASSWORD_HASH")
    if profile:
        if profile not in ("standard", "fast"):
            raise ConfigError("CHARGESHARE_PASSWORD_HASH must be standard or fast")
        out["password_hash"] = profile
    for name, key, least in (
        ("CHARGESHARE_HASH_WORKERS", "hash_workers", 1),
        ("CHARGESHARE_HASH_QUEUE", "hash_queue", 0),
    ):
        value = env.get(name)
        if value:
            if not value.isdigit() or int(value) < least:
                raise ConfigError(f"{name} must be a whole number of at least {least}, got {value!r}")
            out[key] = int(value)
    return out


def _timeout_settings(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key, zero_ok in (
        ("CHARGESHARE_STRIPE_TIMEOUT_S", "stripe_timeout_s", False),
        ("CHARGESHARE_REDIS_TIMEOUT_S", "redis_timeout_s", False),
        ("CHARGESHARE_DB_LOCK_TIMEOUT_S", "db_lock_timeout_s", False),
        ("CHARGESHARE_DB_STATEMENT_TIMEOUT_S", "db_statement_timeout_s", True),
    ):
        value = env.get(name)
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not (seconds >= 0 if zero_ok else seconds > 0) or math.isinf(seconds):
            least = "0 (no limit) or more" if zero_ok else "more than 0"
            raise ConfigError(f"{name} must be a number of seconds, {least}, got {value!r}")
        out[key] = seconds
    retries = env.get("CHARGESHARE_STRIPE_RETRIES")
    if retries:
        if not retries.isdigit() or int(retries) > 5:
            raise ConfigError(
                f"CHARGESHARE_STRIPE_RETRIES must be a whole number from 0 to 5, got {retries!r}"
            )
        out["stripe_max_network_retries"] = int(retries)
    return out


@dataclass
class App:
    config: Config
    clock: Clock
    store: Store
    gateway: PaymentGateway
    locks: LockManager
    bus: MessageBus
    marketplace: MarketplaceService
    settlement: SettlementService
    bookings: BookingService
    charging: ChargingService
    auth: AuthService
    limiter: RateLimiter
    hosting: HostingService
    housekeeping: Housekeeping
    reports: ChargerReportsService
    files: ChargerFilesService
    tokens: TokenService
    platform_reporting: PlatformReportingService
    smart: SmartChargingService
    pricing: PricingService
    grid: GridService
    queries: Queries
    # Chargers' last-seen stamps, written behind: the OCPP server forgets them when another process
    # may have changed its charger, the sweep writes them, closing writes what is left.
    last_seen: LastSeen
    fleet: FleetService
    v2g: V2gService
    grid_settlement: GridSettlementService
    redis: RedisClient | None = None  # the shared Redis, or the in-process stand-in for one
    ca: CertificateAuthority | None = None  # OCPP security profile 3, when configured
    # When OCPP acknowledgements may go out: see chargeshare.adapters.durability.
    durability: Durability = field(default_factory=ImmediateDurability)

    def close(self) -> None:
        self.last_seen.close()  # stamps still waiting for the housekeeping sweep: a clean stop loses none
        self.store.close()
        if self.redis is not None:
            self.redis.close()


def _redis_client(url: str | None, timeout_s: float) -> RedisClient:
    if url is None:
        import fakeredis

        # A server of its own (the Redis 7 a bare FakeRedis() models): a bare FakeRedis() registers
        # its server in a process-wide map for good, so every App built and closed kept its Redis.
        return fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0)))
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def _fence_floor(store: Store) -> Callable[[str], int]:
    """The highest fencing token the database has seen for a lock key ("connector:<id>")."""

    def floor(key: str) -> int:
        kind, _, ident = key.partition(":")
        if kind != "connector" or not ident.isdigit():
            return 0
        with store.reading() as tx:
            return tx.bookings.fence_of(int(ident))

    return floor


def _sim_books(store: Store) -> MemoryBooks | SqlBooks:
    """The simulated provider keeps its books in a database that outlives the process, if there is
    one; an in-memory store's world ends with the process anyway."""
    if isinstance(store, SqlStore) and not store.in_memory:
        return SqlBooks(store.engine)
    return MemoryBooks()


def _certificate_authority(directory: Path | None) -> CertificateAuthority | None:
    if directory is None:
        return None
    from chargeshare.adapters.charger_ca import CaError
    from chargeshare.adapters.charger_ca import CertificateAuthority as FileCa

    try:
        # The system clock whatever the app's: the TLS stack checks validity against the machine's.
        return FileCa(directory)
    except CaError as exc:
        raise ConfigError(str(exc)) from None


def build(config: Config | None = None, *, clock: Clock | None = None, create_schema: bool = True) -> App:
    config = config or Config.from_env()
    clock = clock or SystemClock()
    store: Store = (
        MemoryStore()
        if config.database_url == MEMORY_URL
        else SqlStore(
            config.database_url,
            lock_timeout_s=config.db_lock_timeout_s,
            statement_timeout_s=config.db_statement_timeout_s,
        )
    )
    if create_schema:
        store.create_schema()
    gateway: PaymentGateway
    if config.stripe_api_key is not None:
        # Hosts' connected accounts are not modelled yet, so no destination charges: plain holds.
        gateway = StripeGateway(
            config.stripe_api_key,
            base_url=config.stripe_api_base,
            timeout_s=config.stripe_timeout_s,
            max_network_retries=config.stripe_max_network_retries,
        )
    else:
        gateway = SimulatedGateway(clock=clock, books=_sim_books(store))
    shared_redis = config.redis_url is not None
    redis_client = (
        _redis_client(config.redis_url, config.redis_timeout_s)
        if config.locks_enabled or shared_redis
        else None
    )
    locks: LockManager = (
        RedisLocks(redis_client, wait_ms=config.rules.lock_wait_ms, fence_floor=_fence_floor(store))
        if redis_client is not None and config.locks_enabled
        else NoLocks()
    )
    # Shared through Redis when processes share one, so a login limit holds across all of them.
    buckets = RedisBuckets(redis_client, namespace_for(config.database_url)) if shared_redis else None
    bus = InProcessBus()
    ca = _certificate_authority(config.ca_dir)
    rules = config.rules
    settlement = SettlementService(store, gateway, bus, clock, rules)
    marketplace = MarketplaceService(store, ca=ca)
    claims: SlotClaims | None = None
    if config.locks_enabled:
        windows = {
            "pending_ms": round(rules.slot_claim_pending_s * 1000),
            "placing_ms": round(rules.hold_placement_timeout_s * 1000),
            "held_ms": round(rules.slot_claim_held_s * 1000),
        }
        claims = (
            MemorySlotClaims(**windows)  # one process on its own: no Redis round trip to share
            if not shared_redis
            else RedisSlotClaims(redis_client, namespace_for(config.database_url), **windows)
        )
    pricing = PricingService(
        store,
        SimulatedGridSignals(config.grid_seed),
        clock,
        timedelta(seconds=rules.quote_hold_s),
        timedelta(seconds=rules.quote_retention_s),
    )
    bookings = BookingService(store, locks, settlement, bus, clock, rules, pricing, claims)
    last_seen = WriteBehindLastSeen(store, every=timedelta(seconds=rules.heartbeat_interval_s / 4))
    charging = ChargingService(
        store, settlement, bus, clock, rules, last_seen, allow_unknown=config.allow_unknown_chargers
    )
    grid = GridService(store, bus, clock)
    return App(
        config=config,
        clock=clock,
        store=store,
        gateway=gateway,
        locks=locks,
        bus=bus,
        marketplace=marketplace,
        settlement=settlement,
        bookings=bookings,
        charging=charging,
        auth=AuthService(
            store,
            clock,
            secret=config.jwt_secret,
            token_minutes=config.token_minutes,
            hasher=BoundedPasswords(
                password_hasher(config.password_hash), workers=config.hash_workers, queue=config.hash_queue
            ),
        ),
        limiter=RateLimiter(clock, buckets),
        hosting=HostingService(store, marketplace, clock),
        housekeeping=Housekeeping(
            bookings, charging, settlement, grid, pricing, forget_failures=lambda: prune_failures(store)
        ),
        reports=ChargerReportsService(store, clock, bookings, ca=ca, bus=bus),
        files=ChargerFilesService(store, clock),
        tokens=TokenService(store, clock),
        platform_reporting=PlatformReportingService(store, config.reporting),
        smart=SmartChargingService(store, bus, clock, rules.command_backoff),
        pricing=pricing,
        grid=grid,
        queries=Queries.over(store, rules),
        last_seen=last_seen,
        fleet=FleetService(store, bus, clock, rules),
        v2g=V2gService(store, bus, clock, backoff=rules.command_backoff),
        grid_settlement=GridSettlementService(store, clock),
        redis=redis_client,
        ca=ca,
        durability=durability_for(store),
    )
