"""The ASGI application: GraphQL at /graphql, health at /healthz (and the probes /livez,
/readyz), metrics at /metrics, the files of import jobs at /imports/earns."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.api import jobs as wiring
from gateway.api import page_assets
from gateway.api.account.export import AccountExport
from gateway.api.account.page import AccountPage
from gateway.api.auditing import client_of
from gateway.api.authentication import AuthSystem
from gateway.api.console.routes import Console
from gateway.api.faults import ServiceFailure, classify
from gateway.api.graphiql import GraphiQLPage
from gateway.api.graphiql import routes as graphiql_routes
from gateway.api.graphql.context import Context
from gateway.api.graphql.schema import build_schema
from gateway.api.graphql.settlement import statement_download
from gateway.api.http import BadRequest, GraphQLEndpoint
from gateway.api.imports_routes import upload_earns
from gateway.api.oauth_endpoints import routes as auth_server_routes
from gateway.api.observability import wiring as observability
from gateway.api.observability.operations import note_caller
from gateway.api.pools import remote_pools
from gateway.api.runtime import tune_gc
from gateway.api.settings import Settings, SettingsError
from gateway.api.sign_in_routes import AuthRoutes
from gateway.api.slow_clients import RequestBodyDeadline
from gateway.auth.clients import ensure_demo_clients
from gateway.auth.errors import InvalidToken
from gateway.auth.issuer import TokenIssuer
from gateway.auth.keys import KeyStore
from gateway.auth.providers import ProviderUnavailable
from gateway.configuration.service import Configuration
from gateway.configuration.watcher import Watcher
from gateway.development.demo import DEMO_REMOTE_MEMBERS, load_demo, load_demo_rewards
from gateway.earning.observer import observe_programme
from gateway.events.actor import current_actor, current_request, set_actor
from gateway.holds.service import HoldService
from gateway.kernel.database import create_engine, migrate
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.service import LedgerService, utcnow
from gateway.remote.operations import connect_pools
from gateway.rewards.service import RewardService
from gateway.settlement.service import SettlementService
from partners.config.coalition import Coalition, load_coalition

log = logging.getLogger("gateway")


def _service(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.service
    return service


async def health(request: Request) -> Response:
    try:
        async with _service(request).engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        log.exception("health check failed")
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def service_failure(request: Request, exc: Exception) -> Response:
    """A lost, unreachable, slow or busy database outside GraphQL execution (signing in, the
    token endpoint, authenticating a request): 503 with its code and Retry-After."""
    failure = classify(exc)
    if failure is None:
        log.error("unexpected error", exc_info=exc)
        body = {"errors": [{"message": "Unexpected error."}]}
        return JSONResponse(body, status_code=500)
    log.warning("%s: %s", failure.code, exc)
    error: dict[str, object] = {"message": failure.message, "extensions": failure.extensions}
    headers = {"Retry-After": str(failure.retry_after)}
    return JSONResponse({"errors": [error]}, status_code=503, headers=headers)


async def home(request: Request) -> Response:
    return RedirectResponse("/graphql")


def create_app(
    settings: Settings | None = None, clock: Callable[[], datetime] = utcnow
) -> Starlette:
    settings = settings or Settings.from_env()
    observability.configure(settings)
    auth = AuthSystem(settings, load_coalition(settings.config_dir), clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout,
            statement_timeout=settings.db_statement_timeout,
        )
        try:
            if settings.migrate_on_start:
                await migrate(engine)
            # The configuration lives in the database; a new database imports the folder's.
            configuration = Configuration(engine, clock)
            coalition = await configuration.open(settings.config_dir)
            auth.configure(coalition)
            app.state.configuration = configuration
            pools, references = remote_pools(
                coalition, development_members=DEMO_REMOTE_MEMBERS, production=settings.production
            )
            app.state.reference_partners = references
            service = observe_programme(LedgerService(engine, coalition, clock))
            remote = connect_pools(service, pools)
            remote.check_configured()
            await service.start()
            keys = KeyStore(
                engine,
                clock,
                settings.token_lifetime,
                settings.sealer(),
                seal_clear_text_at_start=not settings.production,
            )
            await keys.start()
            issuer = TokenIssuer(engine, keys, settings.public_url, settings.token_lifetime, clock)
            app.state.issuer = issuer
            auth.start(app, service, issuer)
            demo = current_actor.set("system:demo")  # the actor of what the demo posts
            if settings.demo_data:
                await load_demo(service)
                if not settings.production:
                    await ensure_demo_clients(engine, sorted(coalition.partners), clock())
            app.state.service = service
            app.state.holds = HoldService(service)
            app.state.rewards = RewardService(service)
            app.state.settlement = SettlementService(service)
            app.state.privacy = wiring.privacy(service)
            app.state.imports = wiring.imports(service)
            app.state.webhooks = wiring.webhooks(service, settings)
            if settings.demo_data:
                await load_demo_rewards(app.state.rewards)
            current_actor.reset(demo)
            # Consumers and sweeps run here unless separate runners do (COALITION_JOBS=off);
            # several processes running them share the work through the database.
            jobs = None
            if settings.jobs:
                jobs = wiring.runner(service, settings, None if pools else ())
            app.state.jobs = jobs
            if jobs is not None:
                jobs.start()

            async def reconfigure(coalition: Coalition) -> None:
                await service.reconfigure(coalition)
                try:
                    auth.reconfigure(app, coalition)
                except SettingsError as error:  # checked when applied; the environment differs
                    log.error("sign-in providers kept as they were: %s", error)

            def usable(coalition: Coalition) -> None:
                try:
                    auth.check(coalition)
                except SettingsError as error:
                    raise DomainError(ErrorCode.INVALID_CONFIGURATION, str(error)) from None

            configuration.validators.append(usable)

            configuration.listeners.append(reconfigure)
            watcher = Watcher(configuration, settings.config_poll)
            watcher.start()
            tune_gc()
            # What start-up built lives as long as the process: keep the collector from
            # walking it again on every full collection (tens of ms, stalling all requests).
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await watcher.stop()
                if jobs is not None:
                    await jobs.stop()
                await remote.aclose()
        finally:
            await auth.stop()
            await engine.dispose()

    async def context(request: Request) -> Context:
        authenticator = auth.authenticator
        assert authenticator is not None and auth.identity is not None
        try:
            principal = await authenticator.principal(request)
        except ProviderUnavailable as error:
            raise BadRequest(
                503,
                f"Sign-in cannot be checked now: {error.reason}.",
                {"Retry-After": "10"},
                "PROVIDER_UNAVAILABLE",
            ) from None
        except InvalidToken as error:
            reason = error.reason.replace('"', "'").replace("\\", "")
            challenge = f'Bearer error="invalid_token", error_description="{reason}"'
            raise BadRequest(
                401,
                f"The bearer token was refused: {error.reason}.",
                {"WWW-Authenticate": challenge},
                "UNAUTHENTICATED",
            ) from None
        if principal is None:
            raise BadRequest(
                401,
                "Authentication required: send `Authorization: Bearer <token>` (a partner "
                "app's token from /oauth/token, or a member's or operator's token from a "
                "coalition provider) or sign in at /auth/login/<partner>.",
                {"WWW-Authenticate": 'Bearer realm="coalition"'},
                "UNAUTHENTICATED",
            )
        note_caller(principal)
        set_actor(principal.actor)  # the actor of the events this request's postings append
        trace = current_request.get()
        if trace is not None:
            trace.client_id = client_of(principal)
        return Context(
            _service(request),
            principal,
            auth.identity,
            authenticator,
            request.app.state.holds,
            request.app.state.rewards,
            request.app.state.settlement,
            request.app.state.configuration,
            request.app.state.webhooks,
            request.app.state.privacy,
        )

    async def settlement_csv(request: Request) -> Response:
        """A partner's settlement statement as CSV, authenticated like /graphql."""
        try:
            access = (await context(request)).access
        except BadRequest as error:
            body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
            return JSONResponse(body, status_code=error.status, headers=error.headers)
        params = request.path_params
        return await statement_download(
            request.app.state.settlement, access, params["period_id"], params["partner"]
        )

    async def import_earns(request: Request) -> Response:
        """A file of earns for an import job (see gateway/api/imports_routes.py)."""
        return await upload_earns(
            request, context, request.app.state.imports, settings.max_import_bytes
        )

    def live_coalition() -> Coalition:
        """The configuration in force: the database's, followed at run time."""
        configuration: Configuration = app.state.configuration
        return configuration.coalition

    browser = AuthRoutes(
        auth,
        settings.public_url,
        secure_cookies=settings.production,
        session_lifetime=timedelta(hours=settings.session_hours),
    )
    endpoint = GraphQLEndpoint(
        build_schema(settings.max_query_depth, settings.max_query_tokens, settings.max_query_cost),
        context,
        max_body_bytes=settings.max_body_bytes,
        ide=GraphiQLPage(auth, live_coalition, settings) if settings.graphiql else None,
    )
    routes = [
        Route("/graphql", endpoint.handle, methods=["GET", "POST"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/settlement/{period_id}/{partner}.csv", settlement_csv, methods=["GET"]),
        Route("/imports/earns", import_earns, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        *observability.routes(settings),
        *auth_server_routes(),
        *browser.routes(),
        *auth.mounts(),
        *(graphiql_routes() if settings.graphiql else []),
        *Console(auth).routes(),
        *AccountPage(auth, live_coalition).routes(),
        *AccountExport(auth, lambda: app.state.privacy).routes(),
        *page_assets.routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            *observability.middleware(settings),
            Middleware(RequestBodyDeadline, seconds=settings.http_body_timeout),
        ],
        exception_handlers={
            ServiceFailure: service_failure,
            DBAPIError: service_failure,
            PoolTimeout: service_failure,
            ConnectionError: service_failure,
        },
    )
    return app
