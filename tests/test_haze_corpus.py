"""Shared data and fixtures of the HAZE tests (no tests here): four clearly separate topics, 50 texts each."""

from __future__ import annotations

import numpy as np
import pytest

from nexus_query.context import RequestContext
from nexus_query.store import Record, SpaceStore, SpaceTable, build_rows

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "camping": (
        ["tent", "sleeping bag", "camp stove", "hiking backpack", "trekking poles"],
        ["The {x} kept us dry during the storm on the mountain trail.",
         "How do I pitch the {x} on rocky ground at the campsite?",
         "Our {x} is light enough for a weekend hike in the forest.",
         "Pack the {x} before the canoe trip to the lake.",
         "The {x} survived three nights of camping in the snow.",
         "Which {x} do rangers recommend for alpine camping?",
         "I left the {x} at the trailhead after the hike.",
         "Dry the {x} in the sun after camping in the rain.",
         "The campsite shop rents a {x} for backpacking trips.",
         "A good {x} matters on a long wilderness trek."]),
    "payments": (
        ["credit card", "refund", "invoice", "chargeback", "payment terminal"],
        ["The bank declined the {x} because of insufficient funds.",
         "How long does a {x} take to reach the customer's account?",
         "Accounting flagged the {x} as a duplicate charge.",
         "The {x} failed with a fraud warning from the card issuer.",
         "Send the {x} to finance before the end of the billing month.",
         "The merchant disputed the {x} with the acquiring bank.",
         "A {x} in euros was converted at the daily exchange rate.",
         "The {x} was settled two business days after authorisation.",
         "Tax was missing from the {x} so the payment was rejected.",
         "The {x} appears twice on the customer's bank statement."]),
    "shipping": (
        ["parcel", "courier", "delivery van", "tracking number", "pallet"],
        ["The {x} left the distribution warehouse this morning.",
         "Customs held the {x} at the border for inspection.",
         "The {x} was delivered to the wrong street address.",
         "Our {x} arrives at the loading dock before noon.",
         "Scan the {x} at the sorting hub before dispatch.",
         "The {x} was delayed by snow on the motorway.",
         "Print the label for the {x} and book the freight pickup.",
         "The {x} missed its connection at the regional depot.",
         "Weigh the {x} before it goes on the lorry.",
         "Track the {x} until it reaches the customer's door."]),
    "hr": (
        ["vacation days", "parental leave", "salary review", "sick leave", "pension plan"],
        ["New employees ask how many {x} they get in the first year.",
         "Managers approve {x} in the staff portal.",
         "The union negotiated better {x} for part-time workers.",
         "Human resources updated the {x} policy in the employee handbook.",
         "Request your {x} at least two weeks ahead from your manager.",
         "The {x} rules differ for contractors and permanent staff.",
         "Payroll records {x} at the end of every month.",
         "Ask the people team about {x} after your probation period.",
         "The works council discussed {x} at the staff meeting.",
         "Your contract lists the {x} you are entitled to as an employee."]),
}
DISTINCTIVE = {  # words c-TF-IDF should find for each topic's cluster
    "camping": {"tent", "camping", "hike", "trail", "campsite", "sleeping", "stove", "backpack", "trekking",
                "poles", "bag", "camp", "hiking"},
    "payments": {"card", "credit", "refund", "invoice", "chargeback", "payment", "terminal", "bank", "charge"},
    "shipping": {"parcel", "courier", "delivery", "van", "tracking", "pallet", "number", "warehouse", "depot"},
    "hr": {"vacation", "days", "parental", "leave", "salary", "review", "sick", "pension", "plan", "employees",
           "staff", "employee"},
}


def corpus() -> list[tuple[str, str, str]]:
    """(source, text, topic) for every text, in a fixed order."""
    rows = []
    for topic, (things, templates) in TOPICS.items():
        for i, template in enumerate(templates):
            for j, thing in enumerate(things):
                rows.append((f"{topic}-{i}-{j}", template.format(x=thing), topic))
    return rows


@pytest.fixture(scope="session")
def topic_corpus(provider) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """The corpus and its vectors from the real model, embedded once per session."""
    rows = corpus()
    return rows, provider.embed([text for _, text, _ in rows])


def load_topics(store: SpaceStore, provider, ctx: RequestContext, space_id: str, rows, vectors) -> SpaceTable:
    records = [Record(text=text, source=source, metadata={"topic": topic}) for source, text, topic in rows]
    space = store.open_or_create(ctx, space_id, provider.info)
    space.upsert(build_rows(ctx, records, vectors, provider.info), provider.info)
    return store.open(ctx, space_id)
