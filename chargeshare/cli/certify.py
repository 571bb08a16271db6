"""`chargeshare certify` (a charger against our certifier) and `chargeshare certify-csms` (our virtual
charger against someone's Central System)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.errors import ENVIRONMENT, Problem, doing, run_async
from chargeshare.cli.options import (
    chatter,
    duration_option,
    duration_parser,
    html_option,
    human_output,
    json_option,
    junit_option,
    write_output,
)
from chargeshare.ocpp import V16, V201, OcppVersion

if TYPE_CHECKING:
    from rich.progress import Progress

    from chargeshare.bootstrap import App
    from chargeshare.certify.context import Settings
    from chargeshare.certify.model import CertificationReport, Profile
    from chargeshare.certify.operator import Operator
    from chargeshare.certify.runner import Progress as Hooks
    from chargeshare.services.clock import Clock

console = Console(soft_wrap=True)

AUTO_CLOCK_FACTOR = 10  # --auto: the virtual charger's minutes pass in seconds (meter values, reboots)
AUTO_METER_INTERVAL_S = 10
AUTO_CHARGER_ID = "CERTIFY-AUTO"
# chargeshare.certify's profile names and Settings.id_tag, repeated so that --help loads no certifier
# (a test keeps them equal).
PROFILES = ("core", "remote-trigger", "reservation", "smart-charging", "local-auth-list", "firmware")
DEFAULT_ID_TAG = "CERT-VALID-1"


_COLOUR = {"PASS": "green", "FAIL": "red", "ERROR": "yellow", "NOT APPLICABLE": "dim", "NOT RUN": "magenta"}

HtmlPath = Annotated[Path | None, html_option("the certification report")]
JunitPath = Annotated[Path | None, junit_option("the verdicts (one test case per case)")]
JsonPath = Annotated[Path | None, json_option("the certification report")]


def parse_profiles(text: str | None) -> set[Profile] | None:
    from chargeshare.certify.model import Profile

    if text is None:
        return None
    try:
        return {Profile(p.strip()) for p in text.split(",") if p.strip()}
    except ValueError as exc:
        names = ", ".join(p.value for p in Profile)
        raise typer.BadParameter(f"{exc}; choose from {names}", param_hint="--profile") from exc


def show(report: CertificationReport) -> None:
    from chargeshare.certify.model import Verdict

    table = Table("case", "title", "profile", "verdict", "reason")
    for r in report.results:
        reason = "" if r.verdict is Verdict.PASS else r.reason  # a pass's reason is the case's own text
        table.add_row(r.case_id, r.title, r.profile, f"[{_COLOUR[r.verdict]}]{r.verdict.value}[/]", reason)
    (console if not report.passed else chatter(console)).print(table)  # the failures are the verdict
    counts = ", ".join(f"{report.count(v)} {v.value}" for v in Verdict)
    verdict = "[green]certified[/]" if report.passed else "[red]not certified[/]"
    console.print(f"{report.charge_point_id} (OCPP {report.protocol}): {verdict} — {counts}")
    if report.core_not_run:
        console.print(f"Core cases not run (no operator): {', '.join(report.core_not_run)}")


class _Live:
    """Rich progress for the cases as they run, one line per verdict."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("certifying", total=None)

    def hooks(self, total: int) -> Hooks:
        from chargeshare.certify.model import Case, CaseResult
        from chargeshare.certify.runner import Progress as Hooks

        self.progress.update(self.task, total=total)

        def started(case: Case) -> None:
            self.progress.update(self.task, description=f"{case.id} {case.title}")

        def finished(case: Case, result: CaseResult) -> None:
            colour = _COLOUR[result.verdict]
            self.progress.console.print(f"  [{colour}]{result.verdict.value:>14}[/]  {case.id} {case.title}")
            self.progress.advance(self.task)

        return Hooks(started, finished)


class NeverCertified(Exception):
    """The charger never connected (or with another version): the report of cases not run."""

    def __init__(self, report: CertificationReport) -> None:
        super().__init__("never connected")
        self.report = report


def _write(report: CertificationReport, html: Path | None, junit: Path | None, json_: Path | None) -> None:
    from chargeshare.certify.report import to_html, to_json, to_junit

    for path, render in ((html, to_html), (junit, to_junit), (json_, to_json)):
        if path is not None:
            write_output(path, render(report))
            chatter(console).print(f"wrote {path}")


def _finish(report: CertificationReport, html: Path | None, junit: Path | None, json_: Path | None) -> None:
    show(report)
    _write(report, html, junit, json_)
    raise typer.Exit(0 if report.passed else 1)


def certify(
    charger_id: Annotated[
        str | None,
        typer.Option(
            "--charger-id", help="The charge point id the charger connects with (with --auto: CERTIFY-AUTO)."
        ),
    ] = None,
    protocol: Annotated[
        OcppVersion | None,
        typer.Option(help="Require this OCPP version (default: whatever the charger offers)."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="Comma-separated profiles to run: " + ", ".join(PROFILES) + " (default all)."),
    ] = None,
    html: HtmlPath = None,
    junit: JunitPath = None,
    json_: JsonPath = None,
    auto: Annotated[
        bool,
        typer.Option(help="Certify our virtual charger, run in this process and driven without a person."),
    ] = False,
    variant: Annotated[
        str | None,
        typer.Option(help="With --auto: a deliberately faulty virtual charger (see docs/certification.md)."),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--listen",
            "--host",
            help="Address the certifier listens on (0.0.0.0 for a charger on the network).",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port the certifier listens on (0: any free port).", min=0, max=65535)
    ] = 8181,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--advertise",
            "--public-url",
            help="The URL the charger reaches the certifier at, if not ws://HOST:PORT.",
        ),
    ] = None,
    password: Annotated[str | None, typer.Option(help="16-40 characters; generated if not given.")] = None,
    id_tag: Annotated[
        str, typer.Option(help="A card the operator will present (accepted by the test bench).")
    ] = DEFAULT_ID_TAG,
    connect_timeout: Annotated[
        float, duration_option("How long to wait for the charger to connect.", "s", default_s=600)
    ] = 600.0,
    case_timeout: Annotated[
        float, duration_option("How long each case may take.", "s", default_s=300, min_s=1)
    ] = 300.0,
    wait: Annotated[
        float | None,
        typer.Option(
            help="How long to wait for a frame the charger sends by itself. E.g. 45s, 2m; a bare number "
            "is seconds.",
            parser=duration_parser("s", min_s=0, max_s=None),
            metavar="DURATION",
            show_default="1m; 20s with --auto",
        ),
    ] = None,
    firmware_url: Annotated[
        str | None,
        typer.Option(help="A firmware image URL for TC_044 / TC_L_01 (default: a test image served here)."),
    ] = None,
    diagnostics_url: Annotated[
        str | None, typer.Option(help="An upload location for TC_045 (default: one served here).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="Where to register the charger (default: a throw-away in-memory database)."),
    ] = None,
) -> None:
    """Certify a charger: register it, wait for it to connect, run the cases, report the verdicts."""
    with human_output(console, json_):  # a JSON report on stdout: the rest to stderr
        import secrets

        from chargeshare.bootstrap import Config, build
        from chargeshare.certify.context import LinkLost, Settings
        from chargeshare.services.clock import ScaledClock, SystemClock

        profiles = parse_profiles(profile)
        settings = Settings(id_tag=id_tag, firmware_url=firmware_url, diagnostics_url=diagnostics_url)
        if auto:  # a virtual charger answers at once: shorter waits keep a failing run short
            settings = replace(settings, event_timeout_s=20.0, quiet_s=2.0)
        if wait is not None:
            settings = replace(settings, event_timeout_s=wait)
        password = password or secrets.token_urlsafe(18)[:24]
        clock: Clock = ScaledClock(datetime.now(UTC), AUTO_CLOCK_FACTOR) if auto else SystemClock()
        if variant is not None and not auto:
            raise typer.BadParameter("--variant needs --auto", param_hint="--variant")
        if charger_id is None:
            if not auto:
                raise typer.BadParameter("name the id the charger connects with", param_hint="--charger-id")
            charger_id = AUTO_CHARGER_ID
        with doing("cannot open the database"):
            app = build(Config(database_url=database_url or "sqlite://"), clock=clock)
        try:
            result = run_async(
                _certify(
                    app,
                    charger_id,
                    password,
                    settings,
                    clock,
                    protocol=protocol,
                    profiles=profiles,
                    auto=auto,
                    variant=variant,
                    host=host,
                    port=port,
                    public_url=public_url,
                    connect_timeout=connect_timeout,
                    case_timeout=case_timeout,
                )
            )
        except NeverCertified as exc:  # the charger never came: the reports say so, then exit 3
            _write(exc.report, html, junit, json_)
            raise Problem(
                exc.report.results[0].reason if exc.report.results else "never connected", ENVIRONMENT
            ) from exc
        except LinkLost as exc:  # the charger went mid-run
            raise Problem(str(exc), ENVIRONMENT) from exc
        finally:
            app.close()
        _finish(result, html, junit, json_)


async def _certify(
    app: App,
    charger_id: str,
    password: str,
    settings: Settings,
    clock: Clock,
    *,
    protocol: OcppVersion | None,
    profiles: set[Profile] | None,
    auto: bool,
    variant: str | None,
    host: str,
    port: int,
    public_url: str | None,
    connect_timeout: float,
    case_timeout: float,
) -> CertificationReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from chargeshare.certify.cases import cases_for
    from chargeshare.certify.context import LinkLost
    from chargeshare.certify.operator import PromptOperator
    from chargeshare.certify.runner import Certifier
    from chargeshare.certify.server import CertificationServer, register, served_locations

    tags = {settings.id_tag, settings.other_tag}
    async with CertificationServer(app, charger_id, tags, host=host, port=port) as server:
        creds = register(app, charger_id, password)
        url = (public_url or server.ocpp_url).rstrip("/")
        settings = served_locations(app, settings, charger_id, url)
        # What the operator must configure is printed with -q too, unless our own charger is certified.
        setup = chatter(console) if auto else console
        setup.print(f"certifying [bold]{charger_id}[/]; configure the charger with:")
        setup.print(f"  central system URL: {url}/{charger_id}")
        setup.print(
            f"  subprotocol:        {'ocpp' + protocol if protocol else 'ocpp1.6, ocpp2.0.1 or ocpp2.1'}"
        )
        setup.print(f"  Basic auth:         user {creds.charge_point_id}, password {creds.password}")
        async with _operator(
            auto, variant, charger_id, server.ocpp_url, password, clock, protocol
        ) as operator:
            certifier = Certifier(
                server.registry, charger_id, server.log, operator, clock, settings, case_timeout
            )
            chatter(console).print("waiting for the charger to connect and boot...")
            try:
                version = await certifier.wait_for_charger(connect_timeout)
                if protocol is not None and version != protocol:
                    raise LinkLost(f"{charger_id} connected with OCPP {version}, not {protocol}")
            except LinkLost as exc:
                # Every case it would have run is NOT RUN, so CI still gets its reports. (2.1 runs
                # 2.0.1's cases: listing both would list them twice.)
                planned = [
                    c for v in ([protocol] if protocol else [V16, V201]) for c in cases_for(v, profiles)
                ]
                raise NeverCertified(certifier.never_connected(planned, str(exc))) from exc
            cases = cases_for(version, profiles)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=chatter(console),
                transient=True,
            ) as bar:
                certifier.progress = _Live(bar).hooks(len(cases))
                if isinstance(operator, PromptOperator):
                    operator.around = bar  # the question is asked with the progress bar out of the way
                return await certifier.run(cases, version)


@contextlib.asynccontextmanager
async def _operator(
    auto: bool,
    variant: str | None,
    cp_id: str,
    url: str,
    password: str,
    clock: Clock,
    protocol: OcppVersion | None,
) -> AsyncIterator[Operator]:
    from chargeshare.certify.operator import PromptOperator

    if not auto:
        yield PromptOperator()
        return
    from simulators.certify_virtual import VirtualOperator
    from simulators.faulty_chargers import charger_class

    try:
        cls = charger_class(variant)
    except KeyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--variant") from exc
    charger = cls(
        cp_id,
        url,
        clock,
        [7_400],
        protocol=protocol or V16,
        meter_interval_s=AUTO_METER_INTERVAL_S,
        password=password,
    )
    await charger.start()
    try:
        yield VirtualOperator(charger)
    finally:
        await charger.stop()


def certify_csms(
    url: Annotated[str, typer.Argument(help="The Central System's OCPP endpoint, e.g. ws://host:port/ocpp.")],
    charger_id: Annotated[
        str, typer.Option("--charger-id", help="The id our virtual charger connects as.")
    ] = ("CERTIFY-VIRTUAL"),
    protocol: Annotated[
        OcppVersion, typer.Option(help="The OCPP version our charger speaks.")
    ] = OcppVersion.V16,
    password: Annotated[str | None, typer.Option(help="HTTP Basic password, if the CSMS wants one.")] = None,
    id_tag: Annotated[str, typer.Option(help="A card the CSMS should accept, for the transaction case.")] = (
        "CERT-VALID-1"
    ),
    stay: Annotated[
        float,
        duration_option("How long to stay connected answering whatever the CSMS sends.", "s", default_s=5),
    ] = 5.0,
    html: HtmlPath = None,
    junit: JunitPath = None,
    json_: JsonPath = None,
) -> None:
    """Certify a Central System: our virtual charger boots, heartbeats, reports status, authorises and
    runs a transaction against it, answers its commands, and judges what it sent back."""
    with human_output(console, json_):  # a JSON report on stdout: the rest to stderr
        from chargeshare.certify.context import LinkLost
        from simulators.certify_csms import certify_csms as run

        try:
            result = run_async(
                run(
                    url,
                    charger_id,
                    protocol=protocol.value,
                    password=password,
                    id_tag=id_tag,
                    listen_s=stay,
                )
            )
        except (OSError, LinkLost) as exc:  # the Central System is unreachable, or hung up
            raise Problem(f"cannot certify {url}: {exc}", ENVIRONMENT) from exc
        _finish(result, html, junit, json_)
