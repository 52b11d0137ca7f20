"""One resource class per API group; each serves both clients (see ``offerhub_client._call``)."""

from offerhub_client.resources.ledger import Audit, Ledger, Reconciliation, Reports
from offerhub_client.resources.orders import Disputes, Orders
from offerhub_client.resources.payments import TopUps, Withdrawals
from offerhub_client.resources.platform import Auth, Events, Marketplaces, System, WebhookEndpoints
from offerhub_client.resources.users import Balances, Users, Wallets

__all__ = [
    "Audit",
    "Auth",
    "Balances",
    "Disputes",
    "Events",
    "Ledger",
    "Marketplaces",
    "Orders",
    "Reconciliation",
    "Reports",
    "System",
    "TopUps",
    "Users",
    "Wallets",
    "WebhookEndpoints",
    "Withdrawals",
]
