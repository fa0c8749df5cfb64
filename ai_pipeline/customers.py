"""Who is calling: the customer directory the flows look callers up in.

`CustomerDirectory` is the seam: the in-memory directory serves tests and small
deployments; a CRM- or SQL-backed one implements the same method. Lookups happen
when the greeting is built, which the `Responder` interface makes synchronous, so a
slow store should be read ahead (for example by the inbound webhook) and cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Customer", "CustomerDirectory", "InMemoryCustomerDirectory", "phone_key"]


def phone_key(number: str) -> str:
    """A comparable form of a phone number: its last ten digits (country code dropped).

    ``"+1 (555) 010-0123"`` and ``"5550100123"`` compare equal.
    """
    digits = "".join(ch for ch in number if ch.isdigit())
    return digits[-10:]


@dataclass(frozen=True, slots=True)
class Customer:
    """A known customer.

    Attributes:
        name: full name as the business knows it ("John Smith").
        phone_number: the number they call from.
        customer_id: the business's id for them, if any.
        details: anything else a flow may say ("vehicle": "2019 Honda Civic"); each
            becomes the template parameter ``customer_<key>``.
    """

    name: str
    phone_number: str
    customer_id: str = ""
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def first_name(self) -> str:
        """The first word of the name ("John")."""
        return self.name.split()[0] if self.name.split() else ""


class CustomerDirectory(Protocol):
    """Finds customers by the number they call from."""

    def lookup(self, phone_number: str) -> Customer | None:
        """The customer calling from ``phone_number``, or None if unknown."""
        ...


class InMemoryCustomerDirectory:
    """A `CustomerDirectory` held in a dict, keyed by the last ten digits of the number.

    Args:
        customers: the initial customers.
    """

    def __init__(self, customers: Iterable[Customer] = ()) -> None:
        self._by_number: dict[str, Customer] = {}
        for customer in customers:
            self.add(customer)

    def add(self, customer: Customer) -> None:
        """Add or replace a customer.

        Raises:
            ValueError: the phone number has fewer than seven digits.
        """
        key = phone_key(customer.phone_number)
        if len(key) < 7:
            raise ValueError(f"not a phone number: {customer.phone_number!r}")
        self._by_number[key] = customer

    def lookup(self, phone_number: str) -> Customer | None:
        """The customer calling from ``phone_number``, or None if unknown."""
        key = phone_key(phone_number)
        return self._by_number.get(key) if len(key) >= 7 else None

    def __len__(self) -> int:
        return len(self._by_number)
