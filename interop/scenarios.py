#!/usr/bin/env python3
"""Interop scenario driver for aioconn.

Drives two running connectors (a server and a client, started by interop/run.sh) through the unchanged
Python aioconnectors application API: ConnectorAPI on both ends and ConnectorRemoteTool on the commander
sockets. aioconnectors itself is imported from PYTHONPATH (run.sh puts $AIOCONNECTORS_PATH there); no
reference code lives in this repository.

Usage:
    scenarios.py list                 print the scenario names, one per line
    scenarios.py run NAME DIR         run one scenario against the connectors configured by DIR/server.json and
                                      DIR/client.json (exit 0 = pass, 1 = fail)

Expected values were taken from the Python-vs-Python run (the reference is the oracle).
"""
import asyncio
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback

CONNECT_TIMEOUT = 10.0   # connectors see each other (show_connected_peers)
RECV_TIMEOUT = 5.0       # one expected message reaches a listener
RECONNECT_TIMEOUT = 15.0  # client reconnect period is 5 s in the reference
TOOL_TIMEOUT = 12.0      # one commander request/reply

SCENARIOS = {}


def scenario(timeout=20.0):
    def deco(fn):
        SCENARIOS[fn.__name__] = (fn, timeout)
        return fn
    return deco


class Failure(Exception):
    pass


def _ordered(v):
    """Make dict key order significant: the wire JSON's key order reaches applications (json.loads keeps
    it), and the spec asks connectors to preserve it."""
    if isinstance(v, dict):
        return ('dict', [(k, _ordered(x)) for k, x in v.items()])
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_ordered(x) for x in v])
    return v


def check(label, got, want):
    if _ordered(got) != _ordered(want):
        raise Failure(f'{label}:\n      got  {got!r}\n      want {want!r}')
    print(f'  ok  {label}: {got!r}')


class BoundedTool:
    """Wraps ConnectorRemoteTool so that every command is bounded: the tool itself waits forever for the
    reply length, and a connector that leaves the commander connection open (unknown command, failing
    command) would otherwise hang the scenario."""

    def __init__(self, tool):
        self._tool = tool

    def __getattr__(self, name):
        attr = getattr(self._tool, name)
        if not callable(attr):
            return attr

        async def call(*args, **kwargs):
            try:
                return await asyncio.wait_for(attr(*args, **kwargs), TOOL_TIMEOUT)
            except asyncio.TimeoutError:
                raise Failure(f'remote tool {name}{args or ""} got no reply within {TOOL_TIMEOUT}s') from None
        return call


class Ctx:
    """Both applications of one scenario run: the server-side app and the client-side app."""

    def __init__(self, d):
        from aioconnectors import ConnectorAPI, ConnectorRemoteTool
        self.dir = d
        self.server_cfg = os.path.join(d, 'server.json')
        self.client_cfg = os.path.join(d, 'client.json')
        with open(self.server_cfg) as fd:
            cfg = json.load(fd)
        self.port = cfg['server_sockaddr'][1]
        self.server_id = str(('127.0.0.1', self.port))   # Python tuple repr, e.g. "('127.0.0.1', 10673)"
        with open(self.client_cfg) as fd:
            self.client_id = json.load(fd)['client_name']

        self.log = logging.getLogger('interop')
        handler = logging.FileHandler(os.path.join(d, 'apps.log'))
        handler.setFormatter(logging.Formatter('%(asctime)s - %(name)s - %(levelname)s - %(message)s'))
        self.log.addHandler(handler)
        self.log.setLevel(logging.DEBUG)

        self.ConnectorAPI, self.ConnectorRemoteTool = ConnectorAPI, ConnectorRemoteTool
        # "s" = server-side application, "c" = client-side application
        self.api = {'s': ConnectorAPI(config_file_path=self.server_cfg, logger=self.log.getChild('server.api')),
                    'c': ConnectorAPI(config_file_path=self.client_cfg, logger=self.log.getChild('client.api'))}
        self.tool = {'s': BoundedTool(ConnectorRemoteTool(config_file_path=self.server_cfg,
                                                          logger=self.log.getChild('server.tool'))),
                     'c': BoundedTool(ConnectorRemoteTool(config_file_path=self.client_cfg,
                                                          logger=self.log.getChild('client.tool')))}
        self.inbox = {}
        self.replier = {'s': None, 'c': None}   # side -> fn(tj, data, binary) -> send kwargs or None
        self.reply_results = []

    def peer_of(self, side):
        return self.client_id if side == 's' else self.server_id

    def own_id(self, side):
        return self.server_id if side == 's' else self.client_id

    async def listen(self, side, mtypes=('any', 'other')):
        for mtype in mtypes:
            q = self.inbox[(side, mtype)] = asyncio.Queue()

            async def cb(logger, transport_json, data, binary, q=q, side=side):
                q.put_nowait((transport_json, data, binary))
                fn = self.replier[side]
                if fn is not None:
                    kwargs = fn(transport_json, data, binary)
                    if kwargs is not None:
                        self.reply_results.append(await self.api[side].send_message(**kwargs))
            await self.api[side].start_waiting_for_messages(message_type=mtype, message_received_cb=cb)

    def stop_listening(self):
        for side in 'sc':
            for mtype in list(self.api[side].message_waiters):
                self.api[side].stop_waiting_for_messages(message_type=mtype)

    async def recv(self, side, mtype='any', timeout=RECV_TIMEOUT):
        try:
            return await asyncio.wait_for(self.inbox[(side, mtype)].get(), timeout)
        except asyncio.TimeoutError:
            raise Failure(f'{side}-app: no {mtype!r} message within {timeout}s') from None

    def assert_empty(self, side, mtype='any'):
        q = self.inbox[(side, mtype)]
        if not q.empty():
            raise Failure(f'{side}-app: unexpected {mtype!r} message(s): {[q.get_nowait() for _ in range(q.qsize())]!r}')

    async def send(self, side, **kwargs):
        if side == 's':
            kwargs.setdefault('destination_id', self.client_id)
        return await self.api[side].send_message(**kwargs)

    async def peers(self, side):
        return await self.tool[side].show_connected_peers()

    async def wait_connected(self, timeout=CONNECT_TIMEOUT):
        """Poll show_connected_peers on both commanders until each sees the other."""
        want_s = json.dumps([self.client_id]).encode()
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            s, c = await self.peers('s'), await self.peers('c')
            last = (s, c)
            if s == want_s and c not in (b'{}', b'[]') and c.startswith(b'['):
                return time.monotonic() - (deadline - timeout)
            await asyncio.sleep(0.1)
        raise Failure(f'connectors not connected within {timeout}s (server peers, client peers) = {last!r}')

    async def wait_disconnected(self, side, timeout=CONNECT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await self.peers(side)
            if got in (b'[]', b'{}'):
                return got
            await asyncio.sleep(0.05)
        raise Failure(f'{side} still sees peers after {timeout}s')

    async def roundtrip(self, label):
        """One message each way, proving traffic flows."""
        check(f'{label} c->s send', await self.send('c', message_type='any', data={'probe': label}), True)
        tj, data, binary = await self.recv('s')
        check(f'{label} c->s recv', (tj, data, binary),
              ({'message_type': 'any', 'source_id': self.client_id, 'destination_id': self.server_id},
               json.dumps({'probe': label}).encode(), None))
        check(f'{label} s->c send', await self.send('s', message_type='any', data={'probe': label}), True)
        tj, data, binary = await self.recv('c')
        check(f'{label} s->c recv', (tj, data, binary),
              ({'message_type': 'any', 'source_id': self.server_id, 'destination_id': self.client_id},
               json.dumps({'probe': label}).encode(), None))

    # -------- process control for the reconnect scenario (PIDs recorded so run.sh kills them) --------
    def server_pid(self):
        with open(os.path.join(self.dir, 'server.pid')) as fd:
            return int(fd.read().split()[-1])

    def restart_server_process(self):
        cmd = shlex.split(os.environ['IOP_SERVER_CMD']) + ['create_connector', self.server_cfg]
        out = open(os.path.join(self.dir, 'server2.out'), 'ab')
        proc = subprocess.Popen(cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        with open(os.path.join(self.dir, 'extra_pids'), 'a') as fd:
            fd.write(f'{proc.pid}\n')
        return proc


# ----------------------------------------------------------------------------------------------------------
# expected dict helpers

def tj_of(ctx, side, mtype='any', **extra):
    """The transport_json the *other* side's app receives for a plain send from `side`."""
    d = {'message_type': mtype, 'source_id': ctx.own_id(side), 'destination_id': ctx.peer_of(side)}
    d.update(extra)
    return d


async def _messages_one_way(ctx, src):
    dst = 'c' if src == 's' else 's'
    tag = f'{src}->{dst}'
    cases = [
        ('json dict', dict(data={'a': 1, 'b': [1.0, 'x', None, True], 'u': 'é'}),
         {}, json.dumps({'a': 1, 'b': [1.0, 'x', None, True], 'u': 'é'}).encode(), None),
        ('json str', dict(data='hello'), {}, b'"hello"', None),
        ('raw str', dict(data='raw text é', data_is_json=False), {}, 'raw text é'.encode(), None),
        ('raw bytes', dict(data=b'\x00\x01\xff\xfe', data_is_json=False), {}, b'\x00\x01\xff\xfe', None),
        ('no data', dict(data=None, data_is_json=False), {}, b'', None),
        ('data+binary', dict(data='d', data_is_json=False, binary=b'\x00BIN\xff' * 3),
         {'with_binary': True}, b'd', b'\x00BIN\xff' * 3),
        ('binary only', dict(data=None, data_is_json=False, binary=bytes(range(256))),
         {'with_binary': True}, b'', bytes(range(256))),
        ('other type', dict(message_type='other', data=[1, 2]), {}, b'[1, 2]', None),
    ]
    for label, kwargs, extra, want_data, want_bin in cases:
        kwargs.setdefault('message_type', 'any')
        check(f'{tag} {label}: send_message returns', await ctx.send(src, **kwargs), True)
    for label, kwargs, extra, want_data, want_bin in cases:
        mtype = kwargs['message_type']
        got = await ctx.recv(dst, mtype)
        check(f'{tag} {label}: received', got, (tj_of(ctx, src, mtype, **extra), want_data, want_bin))
    # large payload (bigger than the 64 KiB asyncio buffer limits)
    big = os.urandom(300_000)
    check(f'{tag} 300 KB binary: send returns', await ctx.send(src, message_type='any', data='big',
                                                               data_is_json=False, binary=big), True)
    tj, data, binary = await ctx.recv(dst)
    check(f'{tag} 300 KB binary: transport_json', tj, tj_of(ctx, src, with_binary=True))
    check(f'{tag} 300 KB binary: bytes equal', (data, binary == big, len(binary)), (b'big', True, len(big)))


@scenario()
async def msg_client_to_server(ctx):
    """json, raw str, raw bytes, empty data, binary, binary-only, 2nd type, 300 KB; client app -> server app."""
    await _messages_one_way(ctx, 'c')


@scenario()
async def msg_server_to_client(ctx):
    """Same payload set, server app -> client app (destination_id = client name)."""
    await _messages_one_way(ctx, 's')


@scenario()
async def msg_order(ctx):
    """200 messages each way on the preserved send socket arrive complete and in order."""
    n = 200
    for src, dst in (('c', 's'), ('s', 'c')):
        for i in range(n):
            if not await ctx.send(src, message_type='any', data={'i': i}):
                raise Failure(f'{src}: send {i} returned falsy')
        got = [json.loads((await ctx.recv(dst))[1])['i'] for _ in range(n)]
        check(f'{src}->{dst} {n} messages in order', got == list(range(n)), True)


async def _await_one_way(ctx, src):
    dst = 'c' if src == 's' else 's'
    tag = f'{src}->{dst}'

    def reply(tj, data, binary):
        if not tj.get('await_response'):
            return None
        kw = dict(message_type=tj['message_type'], response_id=tj['request_id'],
                  data=b'reply to ' + data, data_is_json=False)
        if dst == 's':
            kw['destination_id'] = tj['source_id']
        if binary:
            kw['binary'] = binary[::-1]
        return kw
    ctx.replier[dst] = reply

    # int request_id, json data
    res = await ctx.api[src].send_message_await_response(
        message_type='any', data={'q': 1}, request_id=1,
        **({'destination_id': ctx.client_id} if src == 's' else {}))
    check(f'{tag} await int request_id: request seen by peer app', await ctx.recv(dst),
          (tj_of(ctx, src, request_id=1, await_response=True), b'{"q": 1}', None))
    check(f'{tag} await int request_id: returned', res,
          (tj_of(ctx, dst, response_id=1), b'reply to {"q": 1}', None))

    # str request_id, binary both ways, type "other", await_response_timeout set
    res = await ctx.api[src].send_message_await_response(
        message_type='other', data='abc', data_is_json=False, binary=b'\x01\x02\x03', request_id='req-α',
        await_response_timeout=5, **({'destination_id': ctx.client_id} if src == 's' else {}))
    check(f'{tag} await str request_id + binary: request seen', await ctx.recv(dst, 'other'),
          (tj_of(ctx, src, 'other', request_id='req-α', with_binary=True, await_response=True), b'abc',
           b'\x01\x02\x03'))
    check(f'{tag} await str request_id + binary: returned', res,
          (tj_of(ctx, dst, 'other', response_id='req-α', with_binary=True), b'reply to abc', b'\x03\x02\x01'))

    # send_message(await_response=True) form, concurrent requests answered out of order is not required:
    # two sequential awaits with distinct ids
    for rid in (7, 8):
        res = await ctx.send(src, message_type='any', data=None, data_is_json=False, await_response=True,
                             request_id=rid)
        await ctx.recv(dst)
        check(f'{tag} send_message(await_response=True) id {rid}: returned', res,
              (tj_of(ctx, dst, response_id=rid), b'reply to ', None))
    check(f'{tag} replier send_message results', ctx.reply_results, [True] * 4)
    # the replies were consumed by the waiters, never delivered to the requester's listener
    ctx.assert_empty(src, 'any')
    ctx.assert_empty(src, 'other')
    ctx.replier[dst] = None
    ctx.reply_results.clear()


@scenario()
async def await_client_to_server(ctx):
    """Client app requests with send_message_await_response; server app answers with response_id."""
    await _await_one_way(ctx, 'c')


@scenario()
async def await_server_to_client(ctx):
    """Server app requests; client app answers."""
    await _await_one_way(ctx, 's')


@scenario()
async def await_concurrent(ctx):
    """Five concurrent awaits from the client, answered in reverse order, each gets its own reply."""
    held = []

    def hold(tj, data, binary):
        held.append(tj)
        return None
    ctx.replier['s'] = hold
    tasks = [asyncio.ensure_future(ctx.api['c'].send_message_await_response(
        message_type='any', data={'n': i}, request_id=100 + i, await_response_timeout=10)) for i in range(5)]
    for _ in range(5):
        await ctx.recv('s')
    check('all 5 requests seen by server app', sorted(t['request_id'] for t in held), [100, 101, 102, 103, 104])
    for tj in sorted(held, key=lambda t: -t['request_id']):
        r = await ctx.send('s', message_type='any', response_id=tj['request_id'],
                           data={'answer': tj['request_id']})
        check(f'reply {tj["request_id"]} sent', r, True)
    results = await asyncio.gather(*tasks)
    for i, res in enumerate(results):
        check(f'await request {100 + i} result', res,
              (tj_of(ctx, 's', response_id=100 + i), json.dumps({'answer': 100 + i}).encode(), None))
    ctx.assert_empty('c')


@scenario()
async def request_id_no_await(ctx):
    """request_id without await_response is delivered as is; a response_id that matches no waiter is
    delivered to the requester's listener like a normal message."""
    for src, dst in (('c', 's'), ('s', 'c')):
        check(f'{src} send with request_id', await ctx.send(src, message_type='any', data='q', request_id=42), True)
        check(f'{dst} got request', await ctx.recv(dst), (tj_of(ctx, src, request_id=42), b'"q"', None))
        check(f'{dst} send response_id', await ctx.send(dst, message_type='any', data='r', response_id=42), True)
        check(f'{src} got unmatched response', await ctx.recv(src), (tj_of(ctx, dst, response_id=42), b'"r"', None))
        check(f'{src} send request+response ids', await ctx.send(src, message_type='other', data=None,
              data_is_json=False, request_id='a', response_id='b'), True)
        check(f'{dst} got both ids', await ctx.recv(dst, 'other'),
              (tj_of(ctx, src, 'other', request_id='a', response_id='b'), b'', None))


@scenario()
async def wait_for_ack(ctx):
    """wait_for_ack messages are delivered with wait_for_ack kept and transport_id stripped; later messages follow."""
    for src, dst in (('c', 's'), ('s', 'c')):
        for i in range(3):
            check(f'{src} send wait_for_ack #{i}', await ctx.send(src, message_type='any', data={'ack': i},
                                                                 wait_for_ack=True), True)
        check(f'{src} send plain after acks', await ctx.send(src, message_type='any', data={'ack': 'none'}), True)
        for i in range(3):
            check(f'{dst} got wait_for_ack #{i}', await ctx.recv(dst),
                  (tj_of(ctx, src, wait_for_ack=True), json.dumps({'ack': i}).encode(), None))
        check(f'{dst} got plain', await ctx.recv(dst), (tj_of(ctx, src), b'{"ack": "none"}', None))
        # ack + binary + request id
        check(f'{src} send ack+binary', await ctx.send(src, message_type='other', data=None, binary=b'B',
                                                      request_id=3, wait_for_ack=True), True)
        check(f'{dst} got ack+binary', await ctx.recv(dst, 'other'),
              (tj_of(ctx, src, 'other', request_id=3, with_binary=True, wait_for_ack=True), b'null', b'B'))


@scenario()
async def ping(ctx):
    """_ping with await is answered by the remote connector itself (no app involved), both directions."""
    for src, dst in (('c', 's'), ('s', 'c')):
        for i in (1, 2):
            res = await ctx.send(src, message_type='_ping', data=f'PING {str(i) * 5}', data_is_json=False,
                                 request_id=i, await_response=True, await_response_timeout=5)
            check(f'{src} ping #{i} reply', res,
                  ({'message_type': '_ping', 'response_id': i, 'source_id': ctx.own_id(dst)},
                   f'PING {str(i) * 5}'.encode(), None))
        # with binary: the reply echoes data; its binary is not flagged with with_binary so the API sees None
        res = await ctx.api[src].send_message_await_response(
            message_type='_ping', data='PB', data_is_json=False, binary=b'BIN', request_id='pb',
            await_response_timeout=5, **({'destination_id': ctx.client_id} if src == 's' else {}))
        check(f'{src} ping with binary reply', res,
              ({'message_type': '_ping', 'response_id': 'pb', 'source_id': ctx.own_id(dst)}, b'PB', None))
    # nothing reached the apps
    await ctx.roundtrip('after pings')
    for side in 'sc':
        ctx.assert_empty(side, 'any')
        ctx.assert_empty(side, 'other')


@scenario()
async def type_filtering(ctx):
    """A type outside the receiver's recv_message_types is not delivered; a type outside the sender's
    send_message_types is dropped by the sending connector. Markers prove ordering."""
    for src, dst in (('c', 's'), ('s', 'c')):
        check(f'{src} send unrecv', await ctx.send(src, message_type='unrecv', data='x'), True)
        check(f'{src} send bogus', await ctx.send(src, message_type='bogus', data='y'), True)
        check(f'{src} send marker', await ctx.send(src, message_type='any', data='marker'), True)
        check(f'{dst} got only the marker', await ctx.recv(dst), (tj_of(ctx, src), b'"marker"', None))
        # an await request of an invalid type gets no reply at all: the API times out
        res = await ctx.send(src, message_type='bogus', data='z', await_response=True, request_id=1,
                             await_response_timeout=1.5)
        check(f'{src} await of an unsendable type', res, False)
        check(f'{src} send marker 2', await ctx.send(src, message_type='other', data='marker2'), True)
        check(f'{dst} got marker 2', await ctx.recv(dst, 'other'), (tj_of(ctx, src, 'other'), b'"marker2"', None))
        ctx.assert_empty(dst, 'any')


@scenario()
async def tool_show_connected_peers(ctx):
    """show_connected_peers on both commanders (JSON list of peer names)."""
    check('server peers', await ctx.peers('s'), json.dumps([ctx.client_id]).encode())
    check('client peers', await ctx.peers('c'), json.dumps([ctx.server_id]).encode())


@scenario()
async def tool_peek_queues(ctx):
    """peek_queues on both commanders (JSON indent 4, sorted keys)."""
    await ctx.roundtrip('before peek')
    check('server peek_queues', await ctx.tool['s'].peek_queues(),
          json.dumps({'queue_recv': 0, 'queue_send': {ctx.client_id: 0}}, indent=4, sort_keys=True).encode())
    check('client peek_queues', await ctx.tool['c'].peek_queues(),
          json.dumps({'queue_recv': 0, 'queue_send': {ctx.server_id: 0}}, indent=4, sort_keys=True).encode())


@scenario()
async def tool_log_level(ctx):
    """show_log_level / set_log_level on both commanders."""
    for side in 'sc':
        check(f'{side} show_log_level', await ctx.tool[side].show_log_level(), b'INFO')
        check(f'{side} set_log_level DEBUG', await ctx.tool[side].set_log_level('DEBUG'), b'DEBUG')
        check(f'{side} show_log_level', await ctx.tool[side].show_log_level(), b'DEBUG')
        check(f'{side} set_log_level WARNING', await ctx.tool[side].set_log_level('WARNING'), b'WARNING')
        check(f'{side} show_log_level', await ctx.tool[side].show_log_level(), b'WARNING')
        check(f'{side} set_log_level ERROR', await ctx.tool[side].set_log_level('ERROR'), b'ERROR')
        check(f'{side} set_log_level INFO', await ctx.tool[side].set_log_level('INFO'), b'INFO')
        check(f'{side} show_log_level', await ctx.tool[side].show_log_level(), b'INFO')
    await ctx.roundtrip('after log levels')


@scenario()
async def tool_ignore_peer_traffic(ctx):
    """ignore_peer_traffic show/enable/enable_unique/disable; while enabled, traffic in both directions
    through that connector is dropped; after disable it flows again."""
    for side in 'sc':
        other = 'c' if side == 's' else 's'
        t = ctx.tool[side]
        check(f'{side} show initial', await t.ignore_peer_traffic_show(), b'False')
        check(f'{side} enable', await t.ignore_peer_traffic_enable(), b'True')
        check(f'{side} show enabled', await t.ignore_peer_traffic_show(), b'True')
        # outgoing from this side's app and incoming from the peer are both dropped
        check(f'{side} send while ignoring', await ctx.send(side, message_type='any', data='out-dropped'), True)
        check(f'{other} send while peer ignores', await ctx.send(other, message_type='any', data='in-dropped'), True)
        # a _ping from the peer is still answered by the ignoring connector (ping handling precedes the
        # ignore filter); it also proves 'in-dropped', sent before it on the same TCP link, was processed
        res = await ctx.send(other, message_type='_ping', data='p', data_is_json=False, request_id=77,
                             await_response=True, await_response_timeout=5)
        check(f'{other} ping to ignoring peer', res,
              ({'message_type': '_ping', 'response_id': 77, 'source_id': ctx.own_id(side)}, b'p', None))
        # an await request through an ignoring connector gets no reply
        res = await ctx.send(side, message_type='any', data='await-dropped', await_response=True, request_id=9,
                             await_response_timeout=1.0)
        check(f'{side} await while ignoring', res, False)
        check(f'{side} enable_unique', await t.ignore_peer_traffic_enable_unique(ctx.peer_of(side)),
              repr([ctx.peer_of(side)]).encode())
        check(f'{side} show unique', await t.ignore_peer_traffic_show(), repr([ctx.peer_of(side)]).encode())
        check(f'{side} send while ignoring unique', await ctx.send(side, message_type='any', data='out-dropped2'),
              True)
        res = await ctx.send(side, message_type='any', data='await-dropped2', await_response=True, request_id=10,
                             await_response_timeout=1.0)
        check(f'{side} await while ignoring unique', res, False)
        check(f'{side} disable', await t.ignore_peer_traffic_disable(), b'False')
        check(f'{side} show disabled', await t.ignore_peer_traffic_show(), b'False')
        await ctx.roundtrip(f'{side} after disable')   # first messages received are the post-disable ones
        for s in 'sc':
            ctx.assert_empty(s)


@scenario(timeout=40.0)
async def tool_disconnect_client(ctx):
    """Server commander disconnect_client: True, peer lists empty, client reconnects (bounded), traffic flows.
    Unknown client and client-side tool answers are checked too."""
    check('disconnect unknown', await ctx.tool['s'].disconnect_client('nobody'), b'Non existing client nobody')
    check('client tool disconnect_client (local)', await ctx.tool['c'].disconnect_client('x'), False)
    check('raw disconnect_client on client commander',
          await ctx.tool['c'].send_command(cmd='disconnect_client', kwargs={'client_id': 'x'}), b'{}')
    t0 = time.monotonic()
    check('disconnect client1', await ctx.tool['s'].disconnect_client(ctx.client_id), b'True')
    check('server peers right after', await ctx.peers('s'), b'[]')
    await ctx.wait_disconnected('c')
    took = await ctx.wait_connected(RECONNECT_TIMEOUT)
    print(f'  ..  reconnected {time.monotonic() - t0:.1f}s after disconnect (poll {took:.1f}s)')
    await ctx.roundtrip('after reconnect')


@scenario(timeout=60.0)
async def tool_stop_start(ctx):
    """Commander stop/start on the client, then on the server: replies, peer lists, traffic afterwards."""
    c, s = ctx.tool['c'], ctx.tool['s']
    send_sock_c = ctx.api['c'].connector.uds_path_send_to_connector
    check('client stop', await c.stop_connector(), b'{}')
    check('client send socket removed', os.path.exists(send_sock_c), False)
    check('client peers after stop', await ctx.peers('c'), b'[]')
    await ctx.wait_disconnected('s')
    check('client app send while stopped', await ctx.send('c', message_type='any', data='x'), False)
    check('client start', await c.start_connector(), b'{}')
    await ctx.wait_connected()
    await ctx.roundtrip('after client start')

    send_sock_s = ctx.api['s'].connector.uds_path_send_to_connector
    check('server stop', await s.stop_connector(), b'{}')
    check('server send socket removed', os.path.exists(send_sock_s), False)
    check('server peers after stop', await ctx.peers('s'), b'[]')
    await ctx.wait_disconnected('c')
    check('server start', await s.start_connector(), b'{}')
    await ctx.wait_connected(RECONNECT_TIMEOUT)
    await ctx.roundtrip('after server start')
    check('start while running', await s.start_connector(), b'{}')
    await ctx.roundtrip('after 2nd start')


@scenario(timeout=60.0)
async def tool_restart(ctx):
    """Commander restart (sleep_between 0 and 1) on client and server; traffic flows after each."""
    for side, sb in (('c', 0), ('s', 0), ('c', 1)):
        check(f'{side} restart sleep_between={sb}', await ctx.tool[side].restart_connector(sleep_between=sb), b'{}')
        await ctx.wait_connected(RECONNECT_TIMEOUT)
        await ctx.roundtrip(f'after {side} restart')


@scenario(timeout=60.0)
async def reconnect(ctx):
    """Server process SIGKILLed and started again on the same port: the client reconnects and traffic flows."""
    await ctx.roundtrip('before kill')
    pid = ctx.server_pid()
    os.kill(pid, signal.SIGKILL)
    await ctx.wait_disconnected('c', timeout=CONNECT_TIMEOUT)
    check('server commander gone', (await ctx.peers('s')).startswith(b'[Errno'), True)
    t0 = time.monotonic()
    ctx.restart_server_process()
    deadline = time.monotonic() + CONNECT_TIMEOUT
    send_sock = ctx.api['s'].connector.uds_path_send_to_connector
    while not (await ctx.peers('s')).startswith(b'['):
        if time.monotonic() > deadline:
            raise Failure('restarted server commander not answering')
        await asyncio.sleep(0.05)
    await ctx.wait_connected(RECONNECT_TIMEOUT)
    print(f'  ..  client reconnected {time.monotonic() - t0:.1f}s after server restart')
    await ctx.roundtrip('after reconnect')


@scenario()
async def pubsub(ctx):
    """Server is a pubsub_central_broker, client subscribes to 'other' (config): publish_message from the
    client app comes back to it through the broker; show/set_subscribe_message_types on the client tool."""
    check('client show_subscribe_message_types', await ctx.tool['c'].show_subscribe_message_types(), b"['other']")
    check('server show_subscribe_message_types', await ctx.tool['s'].show_subscribe_message_types(), b'{}')
    check('publish other', await ctx.api['c'].publish_message(message_type='other', data={'pub': 1}), True)
    # the broker forwards with its own source_id and the subscriber as destination_id
    check('publication received', await ctx.recv('c', 'other'), (tj_of(ctx, 's', 'other'), b'{"pub": 1}', None))
    check('publish other with binary+request_id', await ctx.api['c'].publish_message(
        message_type='other', data='p2', data_is_json=False, binary=b'\x00\x01', request_id=5), True)
    check('publication with binary received', await ctx.recv('c', 'other'),
          (tj_of(ctx, 's', 'other', request_id=5, with_binary=True), b'p2', b'\x00\x01'))
    check('publish any (not subscribed)', await ctx.api['c'].publish_message(message_type='any', data='nosub'), True)
    # a subscribed marker coming back proves the broker handled 'nosub' before the subscription changes
    check('publish other marker', await ctx.api['c'].publish_message(message_type='other', data='m0'), True)
    check('other marker received', await ctx.recv('c', 'other'), (tj_of(ctx, 's', 'other'), b'"m0"', None))
    check('client set_subscribe_message_types', await ctx.tool['c'].set_subscribe_message_types('any'), b"['any']")
    check('client show_subscribe_message_types', await ctx.tool['c'].show_subscribe_message_types(), b"['any']")
    check('publish any (now subscribed)', await ctx.api['c'].publish_message(message_type='any', data='sub'), True)
    check('first any publication received is the subscribed one', await ctx.recv('c', 'any'),
          (tj_of(ctx, 's', 'any'), b'"sub"', None))
    check('publish other (now unsubscribed)', await ctx.api['c'].publish_message(message_type='other', data='x'), True)
    check('publish any marker', await ctx.api['c'].publish_message(message_type='any', data='marker'), True)
    check('marker publication received', await ctx.recv('c', 'any'), (tj_of(ctx, 's', 'any'), b'"marker"', None))
    ctx.assert_empty('c', 'other')
    await ctx.roundtrip('after publications')
    for side in 'sc':
        for t in ('any', 'other'):
            ctx.assert_empty(side, t)


# ----------------------------------------------------------------------------------------------------------

async def run_one(name, d):
    fn, timeout = SCENARIOS[name]
    loop = asyncio.get_running_loop()

    def quiet_cancel(loop, context):
        # listener handler tasks of the API are cancelled at teardown; asyncio reports that noisily
        if isinstance(context.get('exception'), asyncio.CancelledError):
            return
        loop.default_exception_handler(context)
    loop.set_exception_handler(quiet_cancel)
    ctx = Ctx(d)
    t0 = time.monotonic()
    try:
        took = await ctx.wait_connected()
        print(f'  ..  connected after {took:.2f}s')
        await ctx.listen('s')
        await ctx.listen('c')
        await asyncio.wait_for(fn(ctx), timeout)
    except asyncio.TimeoutError:
        raise Failure(f'scenario timed out after {timeout}s') from None
    finally:
        ctx.stop_listening()
    print(f'PASS {name} ({time.monotonic() - t0:.1f}s)')


def main(argv):
    if len(argv) >= 2 and argv[1] == 'list':
        print('\n'.join(SCENARIOS))
        return 0
    if len(argv) == 4 and argv[1] == 'run' and argv[2] in SCENARIOS:
        try:
            asyncio.run(run_one(argv[2], argv[3]))
            return 0
        except Failure as exc:
            print(f'FAIL {argv[2]}: {exc}')
            return 1
        except Exception:
            traceback.print_exc()
            print(f'FAIL {argv[2]}: exception')
            return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
