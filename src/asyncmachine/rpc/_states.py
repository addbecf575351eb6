"""aRPC states: the server, the client, the state source and the consumer."""

from __future__ import annotations

from typing import Final

import asyncmachine as am


class ServerStates(am.StatesBase):
    """State names of an aRPC server's own machine (`Server.mach`)."""

    ErrNetwork: str = am.state()
    """The listener failed."""
    ErrRpc: str = am.state()
    """An RPC-level failure of the server itself."""
    Start: str = am.state()
    """The server was asked to run."""
    RpcStarting: str = am.state()
    """Opening the listening socket."""
    RpcReady: str = am.state()
    """Listening: clients can connect."""
    Ready: str = am.state()
    """The server is ready (auto, requires RpcReady)."""
    ClientConnected: str = am.state()
    """A client finished its handshake (Multi, args: `client_id` (its
    label), `session_id`)."""
    ClientDisconnected: str = am.state()
    """A client's connection closed (Multi, args: `client_id`,
    `session_id`)."""
    ClientRejected: str = am.state()
    """A peer was refused or dropped for an error (Multi, args: `client_id`,
    `session_id` ("" before the handshake), `error` (the details the peer
    does not get)); the other clients and the source are not affected."""
    MutationRefused: str = am.state()
    """A client's mutation was refused by its permissions or rate limit
    (Multi, args: `session_id`, `code`, `states`)."""
    AcceptFailed: str = am.state()
    """Accepting a connection failed (e.g. out of file descriptors); the
    server backs off and keeps serving (Multi, args: `error`)."""
    HasClients: str = am.state()
    """At least one client is connected."""
    MetricSync: str = am.state()
    """A client asked for a full clock (Multi)."""


class ServerGroups:
    """Groups of mutually exclusive server states."""

    Rpc: Final = (ServerStates.RpcStarting, ServerStates.RpcReady)


SERVER_SCHEMA: Final[am.Schema] = {
    ServerStates.ErrNetwork: am.State(multi=True, require=[am.EXCEPTION]),
    ServerStates.ErrRpc: am.State(multi=True, require=[am.EXCEPTION]),
    ServerStates.Start: am.State(),
    ServerStates.RpcStarting: am.State(
        require=[ServerStates.Start], remove=ServerGroups.Rpc
    ),
    ServerStates.RpcReady: am.State(
        require=[ServerStates.Start], remove=ServerGroups.Rpc
    ),
    ServerStates.Ready: am.State(auto=True, require=[ServerStates.RpcReady]),
    ServerStates.ClientConnected: am.State(multi=True),
    ServerStates.ClientDisconnected: am.State(multi=True),
    ServerStates.ClientRejected: am.State(multi=True),
    ServerStates.MutationRefused: am.State(multi=True),
    ServerStates.AcceptFailed: am.State(multi=True),
    ServerStates.HasClients: am.State(require=[ServerStates.RpcReady]),
    ServerStates.MetricSync: am.State(multi=True),
    am.EXCEPTION: am.State(multi=True),
}
"""Relations of the server's own machine."""


class ClientStates(am.StatesBase):
    """State names of an aRPC client's own machine (`Client.mach`)."""

    ErrNetwork: str = am.state()
    """The connection failed or dropped (Multi)."""
    ErrRpc: str = am.state()
    """The server refused the client: schema mismatch, wrong secret,
    protocol version (no retry)."""
    Start: str = am.state()
    """The client was asked to run."""
    Connecting: str = am.state()
    """Opening a connection."""
    Connected: str = am.state()
    """A connection is open."""
    Disconnected: str = am.state()
    """No connection (before the first, between retries, after the end)."""
    Handshaking: str = am.state()
    """Exchanging hellos with the server."""
    HandshakeDone: str = am.state()
    """The handshake succeeded: the network machine mirrors the source."""
    Ready: str = am.state()
    """The network machine is usable (auto, requires HandshakeDone)."""
    RetryingConn: str = am.state()
    """Waiting for the next connection attempt (backoff)."""
    ConnRetryFailed: str = am.state()
    """All connection attempts failed; the client stopped."""
    ServerPayload: str = am.state()
    """The server sent a payload (Multi, args: `payload`)."""
    MetricSync: str = am.state()
    """The client asked for a full clock after a checksum mismatch (Multi)."""
    Heartbeat: str = am.state()
    """The server answered a ping (Multi)."""


class ClientGroups:
    """Groups of mutually exclusive client states."""

    Connection: Final = (
        ClientStates.Connecting,
        ClientStates.Connected,
        ClientStates.Disconnected,
    )
    Handshake: Final = (ClientStates.Handshaking, ClientStates.HandshakeDone)


CLIENT_SCHEMA: Final[am.Schema] = {
    ClientStates.ErrNetwork: am.State(multi=True, require=[am.EXCEPTION]),
    ClientStates.ErrRpc: am.State(multi=True, require=[am.EXCEPTION]),
    ClientStates.Start: am.State(remove=[ClientStates.ConnRetryFailed]),
    ClientStates.Connecting: am.State(
        require=[ClientStates.Start],
        remove=[*ClientGroups.Connection, ClientStates.RetryingConn],
    ),
    ClientStates.Connected: am.State(
        require=[ClientStates.Start], remove=ClientGroups.Connection
    ),
    ClientStates.Disconnected: am.State(remove=ClientGroups.Connection),
    ClientStates.Handshaking: am.State(
        require=[ClientStates.Connected], remove=ClientGroups.Handshake
    ),
    ClientStates.HandshakeDone: am.State(
        require=[ClientStates.Connected], remove=ClientGroups.Handshake
    ),
    ClientStates.Ready: am.State(auto=True, require=[ClientStates.HandshakeDone]),
    ClientStates.RetryingConn: am.State(require=[ClientStates.Start]),
    ClientStates.ConnRetryFailed: am.State(remove=[ClientStates.Start]),
    ClientStates.ServerPayload: am.State(multi=True),
    ClientStates.MetricSync: am.State(multi=True),
    ClientStates.Heartbeat: am.State(multi=True),
    am.EXCEPTION: am.State(multi=True),
}
"""Relations of the client's own machine."""


class SourceStates(am.StatesBase):
    """States a source machine adds to send payloads to its clients."""

    SendPayload: str = am.state()
    """Send `args["payload"]` (an `rpc.Payload`) to the clients (Multi)."""


SOURCE_SCHEMA: Final[am.Schema] = {SourceStates.SendPayload: am.State(multi=True)}
"""Merge into a source machine's schema to let it send payloads."""


class ConsumerStates(am.StatesBase):
    """States of a consumer machine that receives server payloads."""

    ServerPayload: str = am.state()
    """A payload arrived (Multi, args: `payload`)."""


CONSUMER_SCHEMA: Final[am.Schema] = {ConsumerStates.ServerPayload: am.State(multi=True)}
"""The schema of a minimal consumer machine."""
