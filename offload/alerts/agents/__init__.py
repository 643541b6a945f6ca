"""The agents: one module per outside service, each with `send(endpoint, delivery) -> Result`.

`offload.alerts.delivery` records what an agent answers and decides what follows (sent, a
retry on the schedule, dead, the endpoint disabled). A new agent is a module here, a value
in `offload.alerts.models.Agent` and a line below.
"""

from offload.alerts.agents import discord, email, gotify, ntfy, webhook
from offload.alerts.agents.http import Result, Sender
from offload.alerts.models import Agent

SENDERS: dict[str, Sender] = {
    Agent.WEBHOOK: webhook.send,
    Agent.NTFY: ntfy.send,
    Agent.GOTIFY: gotify.send,
    Agent.DISCORD: discord.send,
    Agent.EMAIL: email.send,
}

__all__ = ["SENDERS", "Result", "Sender"]
