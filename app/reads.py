"""What each page reads before it draws anything: one function per page.

A page calls its function inside its spinner; `app.prefetch` calls the same
functions in the background for the pages a viewer has not opened yet, so
that the first click on one finds its figures in the cache (`app.data`).
One function for both keeps them reading the same queries with the same
arguments, which is what makes the cache hit: tests/app/test_prefetch.py
runs every page after a prefetch and counts the queries it still makes.

What a page reads only on request (a trace, a what-if, fan-out
completeness, the job history) or reads uncached (the engine's
notifications and backlog) stays in the page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import polars as pl

from app import data, filters
from queries import Scope

#: How many template groups of error answers the customer's and the partner's pages list.
CUSTOMER_SAMPLES = 20
PARTNER_SAMPLES = 15
#: The explorer's sample of failed attempts.
EXPLORER_SAMPLES = 50


class Day(NamedTuple):
    report: dict[str, Any]
    codes: pl.DataFrame
    hours: pl.DataFrame
    funnel: pl.DataFrame
    trend: pl.DataFrame | None


def day(scope: Scope, start: dt.datetime, end: dt.datetime) -> Day:
    """The day page's figures."""
    return Day(
        report=data.day_report(scope, start, end),
        codes=data.by_status_code(scope, start, end),
        hours=data.hourly(scope, start, end),
        funnel=data.funnel(scope, start, end),
        trend=_trend(scope, start, end),
    )


class Customer(NamedTuple):
    report: dict[str, Any]
    destinations: pl.DataFrame
    failures: pl.DataFrame
    errors: pl.DataFrame
    hours: pl.DataFrame
    funnel: pl.DataFrame
    samples: pl.DataFrame
    trend: pl.DataFrame | None
    twice: pl.DataFrame


def customer(scope: Scope, start: dt.datetime, end: dt.datetime) -> Customer:
    """The customer page's figures for one workspace."""
    return Customer(
        report=data.day_report(scope, start, end),
        destinations=data.by_destination(scope, start, end),
        failures=data.destination_failures(scope, start, end),
        errors=data.by_error(scope, start, end),
        hours=data.hourly(scope, start, end),
        funnel=data.funnel(scope, start, end),
        samples=data.error_samples(scope, start, end, limit=CUSTOMER_SAMPLES),
        trend=_trend(scope, start, end),
        twice=data.double_deliveries(scope, start, end),
    )


class Partner(NamedTuple):
    report: dict[str, Any]
    codes: pl.DataFrame
    hours: pl.DataFrame
    latency: pl.DataFrame
    samples: pl.DataFrame
    twice: pl.DataFrame


def partner(scope: Scope, start: dt.datetime, end: dt.datetime) -> Partner:
    """The partner page's figures for one integration."""
    return Partner(
        report=data.day_report(scope, start, end),
        codes=data.by_status_code(scope, start, end),
        hours=data.hourly(scope, start, end),
        latency=data.latency(scope, start, end),
        samples=data.error_samples(scope, start, end, limit=PARTNER_SAMPLES),
        twice=data.double_deliveries(scope, start, end),
    )


class Retries(NamedTuple):
    curves: pl.DataFrame
    recovery: pl.DataFrame
    delay: pl.DataFrame
    buckets: pl.DataFrame


def retries(scope: Scope, start: dt.datetime, end: dt.datetime) -> Retries:
    """The retries page's figures."""
    return Retries(
        curves=data.retries(scope, start, end),
        recovery=data.retry_recovery(scope, start, end),
        delay=data.delivery_delay(scope, start, end),
        buckets=data.delivery_delay_histogram(scope, start, end),
    )


def explorer_samples(
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    error_class: str | None = None,
    error_code: str | None = None,
    destination_id: str | None = None,
    integration: str | None = None,
) -> pl.DataFrame:
    """The explorer's latest failed attempts matching its filters (None matches anything)."""
    return data.explorer_samples(
        scope,
        start,
        end,
        error_class=error_class,
        error_code=error_code,
        destination_id=destination_id,
        integration=integration,
        limit=EXPLORER_SAMPLES,
    )


def _trend(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame | None:
    """The daily trend, for a range of several days."""
    return data.daily(scope, start, end) if filters.days_in(start, end) > 1 else None
