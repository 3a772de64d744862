#!/usr/bin/env python3
"""Interop scenario driver for aioconn.

Drives two running connectors (a server and a client, started by interop/run.sh) through the unchanged
Python aioconnectors application API: ConnectorAPI on both ends and ConnectorRemoteTool on the commander
sockets. aioconnectors itself is imported from PYTHONPATH (run.sh puts $AIOCONNECTORS_PATH there); no
reference code lives in this repository.

Usage:
    scenarios.py list                 print the p2p scenario names, one per line
    scenarios.py cells GROUP          print the cells "ROW COL" of a group (p2p tls pubsub files persist)
    scenarios.py columns GROUP        print the column codes of a group with their labels
    scenarios.py prepare ROW COL DIR PORT
                                      write DIR/server.json, client.json (+ client2/3.json) for a cell of a
                                      group other than p2p, make its certificates tree; prints "standard"
                                      (run.sh starts server + client1) or "managed" (the driver starts them),
                                      then a note for the matrix
    scenarios.py run ROW DIR          run one cell against the connectors configured in DIR
                                      (exit 0 = pass, 1 = fail); ROW is a scenario name, with "@MODE" in the
                                      tls group

Expected values were taken from the Python-vs-Python run (the reference is the oracle).
"""
import asyncio
import json
import logging
import os
import shlex
import shutil
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


SCENARIO_META = {}   # name -> {'group': ..., 'managed': bool}


def scenario(timeout=20.0, group='p2p', managed=False):
    """Register a scenario. group: the runner group it belongs to (p2p scenarios are also reused by the tls
    group with a MODE suffix). managed: the driver starts every connector itself (run.sh starts none)."""
    def deco(fn):
        SCENARIOS[fn.__name__] = (fn, timeout)
        SCENARIO_META[fn.__name__] = {'group': group, 'managed': managed}
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
        self.names = {'s': self.server_id, 'c': self.client_id}

    def add_side(self, side, cfg_path):
        """Another client-side application (e.g. 'c2') on the connector configured by cfg_path."""
        with open(cfg_path) as fd:
            self.names[side] = json.load(fd)['client_name']
        self.api[side] = self.ConnectorAPI(config_file_path=cfg_path, logger=self.log.getChild(f'{side}.api'))
        self.tool[side] = BoundedTool(self.ConnectorRemoteTool(config_file_path=cfg_path,
                                                               logger=self.log.getChild(f'{side}.tool')))
        self.replier.setdefault(side, None)

    def peer_of(self, side):
        return self.client_id if side == 's' else self.server_id

    def own_id(self, side):
        return self.names[side]

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
        for side in self.api:
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
async def tool_delete_persistence(ctx):
    """delete_previous_persistence_remains on both commanders: the connector's own send and receive
    persistence files (prefix match) are removed, a file of another prefix is kept; the reply is {}."""
    for side, cfg_path in (('s', ctx.server_cfg), ('c', ctx.client_cfg)):
        with open(cfg_path) as fd:
            cfg = json.load(fd)
        d = cfg['connector_files_dirpath']
        if side == 's':
            alnum = '_'.join(''.join(ch for ch in piece if ch.isalnum()) for piece in ctx.server_id.split())
        else:
            alnum = ''.join(ch for ch in ctx.client_id if ch.isalnum())
        own = [f'connector_disk_persistence_send_from_{alnum}_to_peer_x', f'connector_disk_persistence_recv_by_{alnum}_any']
        other = 'connector_disk_persistence_send_from_someoneelse_to_peer_x'
        for name in own + [other]:
            with open(os.path.join(d, name), 'wb') as fd:
                fd.write(b'@@@PERSISTENCE_SEPARATOR@@@')
        check(f'{side} delete_previous_persistence_remains', await ctx.tool[side].delete_previous_persistence_remains(), b'{}')
        check(f'{side} own files removed, other kept',
              [os.path.exists(os.path.join(d, n)) for n in own + [other]], [False, False, True])
        os.remove(os.path.join(d, other))
    await ctx.roundtrip('after delete_previous_persistence_remains')


@scenario(group='tls')
async def tool_delete_certificate(ctx):
    """delete_client_certificate through ConnectorRemoteTool: on the server (strict mode) the client's
    certificate and symlink go and the client is disconnected; the JSON status reply; on a plaintext or
    allow-all connector the 1.0.33 error status."""
    mode = split_row(os.environ['IOP_ROW'])[1]
    raw = await ctx.tool['s'].delete_client_certificate(client_id=ctx.client_id, remove_only_symlink=False)
    if mode != 'strict':
        print(f'  ..  {mode} reply: {raw!r}')
        st = json.loads(raw)
        want = {'status': False, 'msg': "'Connector' object has no attribute 'ssl_helper'"} if mode == 'plain' else \
            {'status': False, 'msg': f'remove_client_cert non existing client in source_id_2_cert : {ctx.client_id}'}
        check(f'server delete reply ({mode})', st, want)
        return
    check('server delete reply', json.loads(raw), {'status': True, 'msg': ''})
    base = f'{ctx.dir}/certs/certificates/server/client-certs'
    check('server copy removed', os.path.exists(f'{base}/{ctx.client_id}.pem'), False)
    links = [l for l in os.listdir(f'{base}/symlinks') if os.readlink(f'{base}/symlinks/{l}') == f'../{ctx.client_id}.pem']
    check('symlink removed', links, [])
    await ctx.wait_disconnected('s')


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


# ==========================================================================================================
# Groups beyond plaintext point-to-point: tls (issue 5), pubsub (issue 6), files and persist (issue 7).
# run.sh asks `cells GROUP` for the matrix, `prepare ROW COL DIR PORT` to write the configs of one cell, then
# starts the server and client1 (standard cells) or nothing (managed cells) and runs `run ROW DIR`.
# Column codes are one letter per connector (p = Python 1.0.33, g = aioconn); the meaning of each position is
# given by `columns GROUP`.

TLS_MODES = ('plain', 'allow_all', 'strict')
TLS_P2P_SCENARIOS = ('msg_client_to_server', 'msg_server_to_client', 'await_client_to_server',
                     'await_server_to_client', 'ping', 'tool_show_connected_peers')
GROUPS = ('p2p', 'tls', 'pubsub', 'files', 'persist')
COLUMNS = {
    'p2p': [(c, f'{"py" if c[0] == "p" else "go"}-server+{"py" if c[1] == "p" else "go"}-client')
            for c in ('pp', 'gp', 'pg', 'gg')],
    'tls': [(c, f'{"py" if c[0] == "p" else "go"}-server+{"py" if c[1] == "p" else "go"}-client')
            for c in ('pp', 'gp', 'pg', 'gg')],
    'files': [(c, f'{"py" if c[0] == "p" else "go"}-server+{"py" if c[1] == "p" else "go"}-client')
              for c in ('pp', 'gp', 'pg', 'gg')],
    # broker, client1, client2
    'pubsub': [(c, f'broker:{c[0]} c1:{c[1]} c2:{c[2]}') for c in ('ppp', 'gpp', 'pgg', 'ggg', 'gpg', 'pgp')],
    # writer, replayer, peer (server-side rows: writer/replayer are servers; client-side rows: clients)
    'persist': [(c, f'write:{c[0]} replay:{c[1]} peer:{c[2]}') for c in ('ppp', 'pgp', 'pgg', 'gpp', 'gpg', 'ggg')],
}
PUBSUB_ROWS = ('pubsub_fanout', 'pubsub_on_the_fly', 'pubsub_resubscribe')
FILES_ROWS = ('file_small', 'file_empty', 'file_with_binary', 'file_chunked_3', 'file_chunked_12',
              'file_error_missing')
PERSIST_ROWS = ('persist_server_send', 'persist_client_send')


def group_rows(group):
    if group == 'p2p':
        return [n for n, m in SCENARIO_META.items() if m['group'] == 'p2p']
    if group == 'tls':
        # plain mode of the p2p scenarios is the p2p group's cell (same configs); tls_clients has all three
        return [f'{s}@{m}' for s in TLS_P2P_SCENARIOS for m in TLS_MODES[1:]] + [
            f'tls_clients@{m}' for m in TLS_MODES] + [f'tool_delete_certificate@{m}' for m in TLS_MODES]
    return {'pubsub': PUBSUB_ROWS, 'files': FILES_ROWS, 'persist': PERSIST_ROWS}[group]


def split_row(row):
    name, _, mode = row.partition('@')
    return name, (mode or 'plain')


def tree_maker(row, col):
    """Which tool makes the certificates tree of a tls cell: alternates over rows and columns so that every
    pairing runs with trees made by both tools and every row too."""
    scens = list(TLS_P2P_SCENARIOS) + ['tls_clients', 'tool_delete_certificate']
    cols = [c for c, _ in COLUMNS['tls']]
    # tls_clients (index 6): go trees for pp and pg (Python server on our tree), Python trees for gp and gg
    return 'pg'[(scens.index(split_row(row)[0]) + cols.index(col) + 1) % 2]


def base_cfg(d, port, role, name='client1', files='c'):
    cfg = {
        'is_server': role == 'server',
        'server_sockaddr': ['127.0.0.1', port],
        'use_ssl': False,
        'ssl_allow_all': False,
        'connector_files_dirpath': f'{d}/{files}',
        'default_logger_dirpath': f'{d}/{files}',
        'default_logger_log_level': 'INFO',
        'default_logger_rotate': False,
        'send_message_types': ['any', 'other', 'unrecv'],
        'recv_message_types': ['any', 'other'],
        'disk_persistence_send': False,
        'disk_persistence_recv': False,
        'debug_msg_counts': False,
        'silent': True,
    }
    if role == 'server':
        cfg['connector_files_dirpath'] = cfg['default_logger_dirpath'] = f'{d}/s'
    else:
        cfg['client_name'] = name
        cfg['enable_client_try_reconnect'] = True
    cfg['uds_path_receive_preserve_socket'] = True
    cfg['uds_path_send_preserve_socket'] = True
    return cfg


def write_cfg(d, fname, cfg):
    os.makedirs(cfg['connector_files_dirpath'], exist_ok=True)
    with open(os.path.join(d, fname), 'w') as fd:
        json.dump(cfg, fd, indent=4)


def impl_cmd(impl):
    return shlex.split(os.environ['IOP_PY_CMD' if impl == 'p' else 'IOP_GO_CMD'])


def make_tree(d, maker, target):
    """create_certificates into target (which then holds certificates/) with the chosen tool."""
    with open(os.path.join(d, 'certs.out'), 'ab') as out:
        rc = subprocess.run(impl_cmd(maker) + ['create_certificates', target], cwd=d, stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60).returncode
    if rc != 0 or not os.path.exists(os.path.join(target, 'certificates', 'client', 'client-certs', 'default.pem')):
        raise SystemExit(f'create_certificates by {maker} failed (rc {rc}), see certs.out')


def prepare(row, col, d, port):
    """Write the configs of one cell. Prints 'standard' or 'managed', then an optional note for the matrix."""
    name, mode = split_row(row)
    srv, cli = base_cfg(d, port, 'server'), base_cfg(d, port, 'client')
    extra = {}   # file name -> config of connectors the driver starts itself
    note = ''
    meta = SCENARIO_META[name]
    if meta['group'] in ('p2p', 'tls') and (row in group_rows('tls')):
        c2 = base_cfg(d, port, 'client', name='client2', files='c2')
        if mode != 'plain':
            maker = tree_maker(row, col)
            note = f'tree:{"py" if maker == "p" else "go"}'
            make_tree(d, maker, f'{d}/certs')
            for cfg in (srv, cli, c2):
                cfg.update(use_ssl=True, ssl_allow_all=(mode == 'allow_all'), certificates_directory_path=f'{d}/certs')
            if mode == 'strict' and name == 'tls_clients':
                # client3: an issued name (client2) but only the default certificate (its own copy of the tree)
                shutil.copytree(f'{d}/certs/certificates/client', f'{d}/certs3/certificates/client', symlinks=True)
                c3 = base_cfg(d, port, 'client', name='client2', files='c3')
                c3.update(use_ssl=True, ssl_allow_all=False, certificates_directory_path=f'{d}/certs3')
                extra['client3.json'] = c3
        if name == 'tls_clients':
            extra['client2.json'] = c2
    elif name.startswith('pubsub'):
        srv['pubsub_central_broker'] = True
        cli['subscribe_message_types'] = ['other']
        c2 = base_cfg(d, port, 'client', name='client2', files='c2')
        c2['subscribe_message_types'] = ['other']
        extra['client2.json'] = c2
    elif name.startswith('file'):
        srv['file_recv_config'] = {'any': {'target_directory': f'{d}/fs/'}}
        cli['file_recv_config'] = {'any': {'target_directory': f'{d}/fc/'}}
    elif name.startswith('persist'):
        reuse = dict(reuse_server_sockaddr=True, reuse_uds_path_send_to_connector=True,
                     reuse_uds_path_commander_server=True)
        srv.update(reuse)
        cli.update(reuse)
        (srv if name == 'persist_server_send' else cli)['disk_persistence_send'] = True
    write_cfg(d, 'server.json', srv)
    write_cfg(d, 'client.json', cli)
    for fname, cfg in extra.items():
        write_cfg(d, fname, cfg)
    print('managed' if meta['managed'] else 'standard')
    print(note)


# ---------------- processes started by the driver (PIDs appended to DIR/extra_pids for run.sh) ------------

def tcp_listening(port):
    hexport = f':{port:04X}'
    for path in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(path) as fd:
                for line in fd.readlines()[1:]:
                    f = line.split()
                    if f[1].endswith(hexport) and f[3] == '0A':
                        return True
        except OSError:
            pass
    return False


def spawn(ctx, impl, cfg_file, tag, env=None):
    out = open(os.path.join(ctx.dir, f'{tag}.out'), 'ab')
    proc = subprocess.Popen(impl_cmd(impl) + ['create_connector', os.path.join(ctx.dir, cfg_file)], cwd=ctx.dir,
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})))
    with open(os.path.join(ctx.dir, 'extra_pids'), 'a') as fd:
        fd.write(f'{proc.pid}\n')
    proc.tag = tag
    return proc


async def wait_ready(ctx, proc, cfg_file, timeout=10.0):
    """Sockets of the connector exist (and its port LISTENs for a server); fails at once if it exits."""
    with open(os.path.join(ctx.dir, cfg_file)) as fd:
        cfg = json.load(fd)
    fdir = cfg['connector_files_dirpath']
    if cfg['is_server']:
        sid = f'127001_{ctx.port}'
        files = [f'{fdir}/uds_path_commander_{sid}', f'{fdir}/uds_path_send_to_connector_server_{sid}']
    else:
        n = cfg['client_name']
        files = [f'{fdir}/uds_path_commander_{n}', f'{fdir}/uds_path_send_to_connector_client_{n}']
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise Failure(f'{proc.tag} ({cfg_file}) exited with {proc.returncode} before being ready')
        if all(os.path.exists(f) for f in files) and (not cfg['is_server'] or tcp_listening(ctx.port)):
            return
        if time.monotonic() > deadline:
            raise Failure(f'{proc.tag} ({cfg_file}) not ready within {timeout}s')
        await asyncio.sleep(0.05)


async def stop_proc(proc, timeout=5.0):
    """SIGTERM, then SIGKILL after timeout. Returns how it ended."""
    if proc.poll() is not None:
        return f'already exited ({proc.returncode})'
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        return 'SIGKILL after SIGTERM timeout'
    return f'exited after SIGTERM ({proc.returncode})'


async def wait_peers(ctx, side, want, timeout=CONNECT_TIMEOUT):
    """Poll show_connected_peers until it equals the sorted list `want`."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        raw = await ctx.peers(side)
        try:
            got = sorted(json.loads(raw))
        except ValueError:
            got = raw
        if got == sorted(want):
            return
        await asyncio.sleep(0.1)
    raise Failure(f'{side} peers: want {sorted(want)!r}, last got {got!r} after {timeout}s')


def cert_serial(pem_path):
    """OpenSSL serial text of a PEM certificate, as Python's getpeercert() prints it."""
    import ssl
    return ssl._ssl._test_decode_cert(pem_path)['serialNumber']


def col_impls():
    return os.environ.get('IOP_COL', '')


# ---------------------------------------------- tls group ------------------------------------------------

async def _two_way(ctx, cside, label):
    """One message each way between the server app and the client app `cside`."""
    cname = ctx.own_id(cside)
    check(f'{label} {cside}->s send', await ctx.api[cside].send_message(message_type='any', data={'from': cname}), True)
    check(f'{label} {cside}->s recv', await ctx.recv('s'),
          ({'message_type': 'any', 'source_id': cname, 'destination_id': ctx.server_id},
           json.dumps({'from': cname}).encode(), None))
    check(f'{label} s->{cside} send', await ctx.api['s'].send_message(message_type='any', destination_id=cname,
                                                                       data={'to': cname}), True)
    check(f'{label} s->{cside} recv', await ctx.recv(cside),
          ({'message_type': 'any', 'source_id': ctx.server_id, 'destination_id': cname},
           json.dumps({'to': cname}).encode(), None))


def _check_enrolled(ctx, name, label):
    """client/client-certs/<name>.pem|.key exist (key 0600), the server kept <name>.pem with a symlink, and
    source_id_2_cert.json maps name <-> the serial of that certificate. Returns the serial."""
    base = f'{ctx.dir}/certs/certificates'
    pem = f'{base}/client/client-certs/{name}.pem'
    key = f'{base}/client/client-certs/{name}.key'
    check(f'{label}: client/client-certs/{name}.pem and .key exist', (os.path.exists(pem), os.path.exists(key)),
          (True, True))
    check(f'{label}: {name}.key mode', oct(os.stat(key).st_mode & 0o777), '0o600')
    serial = cert_serial(pem)
    spem = f'{base}/server/client-certs/{name}.pem'
    check(f'{label}: server kept client-certs/{name}.pem, same certificate',
          os.path.exists(spem) and open(spem).read().strip() == open(pem).read().strip(), True)
    links = [l for l in os.listdir(f'{base}/server/client-certs/symlinks')
             if os.readlink(f'{base}/server/client-certs/symlinks/{l}') == f'../{name}.pem']
    check(f'{label}: one symlink -> ../{name}.pem', len(links), 1)
    with open(f'{base}/server/client-certs/source_id_2_cert.json') as fd:
        m = json.load(fd)
    check(f'{label}: source_id_2_cert.json lists {name}',
          (m['source_id_2_cert'].get(name), m['cert_2_source_id'].get(serial)), (serial, name))
    return serial


@scenario(timeout=40.0, group='tls')
async def tls_clients(ctx):
    """A second client (and, in strict mode, the certificate workflow and a refused name thief).
    strict: client1 already enrolled (default cert -> _ssl -> reconnect with its own cert) before the
    scenario; client2 does the same; client3 = name client2 with only the default certificate is refused."""
    mode = split_row(os.environ['IOP_ROW'])[1]
    impls = col_impls()
    s1 = _check_enrolled(ctx, 'client1', 'client1') if mode == 'strict' else None
    await _two_way(ctx, 'c', 'client1')
    ctx.add_side('c2', os.path.join(ctx.dir, 'client2.json'))
    p2 = spawn(ctx, impls[1], 'client2.json', 'client2')
    await wait_ready(ctx, p2, 'client2.json')
    await ctx.listen('c2')
    await wait_peers(ctx, 's', ['client1', 'client2'])
    if mode == 'strict':
        s2 = _check_enrolled(ctx, 'client2', 'client2')
        check('client2 serial differs from client1', s2 != s1, True)
    await _two_way(ctx, 'c2', 'client2')
    await _two_way(ctx, 'c', 'client1 with client2 up')
    if mode != 'strict':
        return
    print(f'  ..  client2 stopped: {await stop_proc(p2)}')
    await wait_peers(ctx, 's', ['client1'])
    with open(f'{ctx.dir}/certs/certificates/server/client-certs/source_id_2_cert.json') as fd:
        before = fd.read()
    p3 = spawn(ctx, impls[1], 'client3.json', 'client3')
    await wait_ready(ctx, p3, 'client3.json')
    # observe long enough for a first attempt and one 5 s retry of the reference client
    t_end = time.monotonic() + 7.0
    while time.monotonic() < t_end:
        raw = await ctx.peers('s')
        if b'client2' in raw:
            raise Failure(f'client3 (name client2, default certificate only) was accepted: server peers {raw!r}')
        if os.path.exists(f'{ctx.dir}/certs3/certificates/client/client-certs/client2.pem'):
            raise Failure('client3 received a certificate for the already-issued name client2')
        await asyncio.sleep(0.2)
    print('  ok  client3 (issued name, no certificate) never listed in show_connected_peers for 7 s')
    with open(f'{ctx.dir}/certs/certificates/server/client-certs/source_id_2_cert.json') as fd:
        check('source_id_2_cert.json unchanged by client3', fd.read() == before, True)
    check('client3 still running (it retries)', p3.poll(), None)
    await _two_way(ctx, 'c', 'client1 after client3')


# -------------------------------------------- pubsub group ------------------------------------------------

def pub_tj(ctx, sub, mtype='other', **extra):
    d = {'message_type': mtype, 'source_id': ctx.server_id, 'destination_id': ctx.own_id(sub)}
    d.update(extra)
    return d


async def _start_client2(ctx):
    ctx.add_side('c2', os.path.join(ctx.dir, 'client2.json'))
    await ctx.listen('c2')
    p2 = spawn(ctx, col_impls()[2], 'client2.json', 'client2')
    await wait_ready(ctx, p2, 'client2.json')
    await wait_peers(ctx, 's', ['client1', 'client2'])
    return p2


async def _pub_sync(ctx, side, subs, mtype='other', tag='sync'):
    """`side` publishes a marker; every app in subs must receive it. Since a client's subscription frames
    and its publications share its connection, its own marker coming back proves the broker has applied
    its latest subscription change."""
    data = f'{tag} from {side}'
    check(f'{side} publish {mtype} {tag}', await ctx.api[side].publish_message(message_type=mtype, data=data), True)
    for sub in subs:
        check(f'{sub} got {tag} from {side}', await ctx.recv(sub, mtype), (pub_tj(ctx, sub, mtype), json.dumps(data).encode(), None))


def _drain(ctx, side, mtype):
    q = ctx.inbox[(side, mtype)]
    return [q.get_nowait() for _ in range(q.qsize())]


@scenario(group='pubsub')
async def pubsub_fanout(ctx):
    """client1 and client2 subscribed to 'other' (config): publications from either reach both with the
    broker's rewrite; an unsubscribed type reaches nobody; the broker's own app receives nothing."""
    await _start_client2(ctx)
    await _pub_sync(ctx, 'c2', ['c2', 'c'], tag='c2 subscribed')
    check('c publish json', await ctx.api['c'].publish_message(message_type='other', data={'pub': 1, 'u': 'é'}), True)
    for sub in ('c', 'c2'):
        check(f'{sub} got json publication', await ctx.recv(sub, 'other'),
              (pub_tj(ctx, sub), json.dumps({'pub': 1, 'u': 'é'}).encode(), None))
    check('c2 publish raw+binary+request_id', await ctx.api['c2'].publish_message(
        message_type='other', data=b'\x00raw\xff', data_is_json=False, binary=bytes(range(256)), request_id=5), True)
    for sub in ('c', 'c2'):
        check(f'{sub} got binary publication', await ctx.recv(sub, 'other'),
              (pub_tj(ctx, sub, request_id=5, with_binary=True), b'\x00raw\xff', bytes(range(256))))
    check('c publish binary only', await ctx.api['c'].publish_message(
        message_type='other', data=None, data_is_json=False, binary=b'B' * 70000), True)
    for sub in ('c', 'c2'):
        tj, data, binary = await ctx.recv(sub, 'other')
        check(f'{sub} got 70 KB binary-only publication', (tj, data, binary == b'B' * 70000),
              (pub_tj(ctx, sub, with_binary=True), b'', True))
    check('c publish any (nobody subscribed)', await ctx.api['c'].publish_message(message_type='any', data='nosub'), True)
    await _pub_sync(ctx, 'c', ['c', 'c2'], tag='marker')
    await asyncio.sleep(0.3)
    for side in ('s', 'c', 'c2'):
        for t in ('any', 'other'):
            ctx.assert_empty(side, t)
    await ctx.roundtrip('p2p through the broker')


@scenario(group='pubsub')
async def pubsub_on_the_fly(ctx):
    """client2 changes its subscription with RemoteTool.set_subscribe_message_types; deliveries follow."""
    await _start_client2(ctx)
    await _pub_sync(ctx, 'c2', ['c2', 'c'], tag='c2 subscribed')
    check('c2 show', await ctx.tool['c2'].show_subscribe_message_types(), b"['other']")
    check('c2 set any', await ctx.tool['c2'].set_subscribe_message_types('any'), b"['any']")
    check('c2 show', await ctx.tool['c2'].show_subscribe_message_types(), b"['any']")
    await _pub_sync(ctx, 'c2', ['c2'], mtype='any', tag='c2 now on any')
    check('c publish other', await ctx.api['c'].publish_message(message_type='other', data='o1'), True)
    check('c publish any', await ctx.api['c'].publish_message(message_type='any', data='a1'), True)
    check('c got other', await ctx.recv('c', 'other'), (pub_tj(ctx, 'c'), b'"o1"', None))
    check('c2 got any', await ctx.recv('c2', 'any'), (pub_tj(ctx, 'c2', 'any'), b'"a1"', None))
    await asyncio.sleep(0.3)
    check('c2 got no other after unsubscribing', _drain(ctx, 'c2', 'other'), [])
    check('c got no any', _drain(ctx, 'c', 'any'), [])
    got = await ctx.tool['c2'].set_subscribe_message_types('any', 'other')   # set order: arbitrary
    check('c2 set any+other', sorted(eval(got.decode())), ['any', 'other'])
    got = await ctx.tool['c2'].show_subscribe_message_types()
    check('c2 show after set any+other', sorted(eval(got.decode())), ['any', 'other'])
    await _pub_sync(ctx, 'c2', ['c', 'c2'], mtype='other', tag='c2 on both')
    check('c publish other', await ctx.api['c'].publish_message(message_type='other', data='o2'), True)
    for sub in ('c', 'c2'):
        check(f'{sub} got other', await ctx.recv(sub, 'other'), (pub_tj(ctx, sub), b'"o2"', None))
    # an empty result is answered as {} by the reference commander (falsy result)
    check('c2 set nothing', await ctx.tool['c2'].set_subscribe_message_types(), b'{}')
    # c2 sees nothing of its own now, so the barrier is a point-to-point message on c2's link (behind its
    # unsubscribe frame) plus a short settle: c's next publication travels on another connection
    check('c2 p2p barrier send', await ctx.api['c2'].send_message(message_type='any', data='barrier'), True)
    await ctx.recv('s')
    await asyncio.sleep(0.5)
    await _pub_sync(ctx, 'c', ['c'], tag='c2 unsubscribed')
    check('c publish other', await ctx.api['c'].publish_message(message_type='other', data='o3'), True)
    check('c got o3', await ctx.recv('c', 'other'), (pub_tj(ctx, 'c'), b'"o3"', None))
    await asyncio.sleep(0.3)
    check('c2 got nothing after set []', (_drain(ctx, 'c2', 'other'), _drain(ctx, 'c2', 'any')), ([], []))


@scenario(timeout=40.0, group='pubsub')
async def pubsub_resubscribe(ctx):
    """The broker disconnects client2; client2 reconnects and re-subscribes. Expected number of copies of a
    publication afterwards: Python broker = the oracle's count (it appends a subscription per connect and the
    unsubscribe of a dead link is lost), aioconn broker = exactly 1 (set per topic, docs/compatibility.md)."""
    await _start_client2(ctx)
    await _pub_sync(ctx, 'c2', ['c2', 'c'], tag='c2 subscribed')
    t0 = time.monotonic()
    check('broker disconnect_client client2', await ctx.tool['s'].disconnect_client('client2'), b'True')
    await wait_peers(ctx, 's', ['client1'], timeout=5)
    await wait_peers(ctx, 's', ['client1', 'client2'], timeout=RECONNECT_TIMEOUT)
    print(f'  ..  client2 back after {time.monotonic() - t0:.1f}s')
    # client2's own marker returning proves its re-subscription was processed
    check('c2 publish sync', await ctx.api['c2'].publish_message(message_type='other', data='sync'), True)
    await ctx.recv('c2', 'other', timeout=RECONNECT_TIMEOUT)
    check('c publish after reconnect', await ctx.api['c'].publish_message(message_type='other', data='after'), True)
    check('c publish end marker', await ctx.api['c'].publish_message(message_type='other', data='end'), True)
    got = {}
    for sub in ('c', 'c2'):
        got[sub] = []
        while True:
            tj, data, binary = await ctx.recv(sub, 'other')
            if data == b'"end"':
                break
            got[sub].append((tj, data, binary))
        # copies of c2's sync marker (c receives it too; a Python broker sends c2 extra copies)
        got[sub] = [g for g in got[sub] if g[1] != b'"sync"']
    check('c (never disconnected) got "after" once', got['c'], [(pub_tj(ctx, 'c'), b'"after"', None)])
    got = got['c2']
    want_copies = 2 if col_impls()[0] == 'p' else 1
    check(f'c2 copies of "after" ({"Python broker quirk: duplicate subscription" if want_copies == 2 else "exactly once"})',
          got, [(pub_tj(ctx, 'c2'), b'"after"', None)] * want_copies)


# --------------------------------------------- files group ------------------------------------------------

def recv_dir(ctx, side):
    return f'{ctx.dir}/{"fs" if side == "s" else "fc"}'


def send_dir(ctx, side):
    d = f'{ctx.dir}/out_{side}'
    os.makedirs(d, exist_ok=True)
    return d


def files_dir(ctx, side):
    return f'{ctx.dir}/{"s" if side == "s" else "c"}'


async def wait_path(path, exists=True, timeout=3.0):
    deadline = time.monotonic() + timeout
    while os.path.exists(path) != exists and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return os.path.exists(path) == exists


def read_or(path):
    try:
        with open(path, 'rb') as fd:
            return fd.read()
    except OSError as exc:
        return f'<{exc.__class__.__name__}>'


async def _check_file(label, path, want):
    """The file must be complete when the message is delivered (the reference writes it before delivering);
    if not, report what was there and what appeared later."""
    got = read_or(path)
    if got != want:
        await asyncio.sleep(1.0)
        later = read_or(path)
        raise Failure(f'{label}: {path} at delivery: {_short(got)}; 1 s later: {_short(later)}; want {_short(want)}')
    print(f'  ok  {label}: {os.path.basename(path)} = {len(want)} bytes')


def _short(v):
    if isinstance(v, bytes):
        return f'{len(v)} bytes {v[:40]!r}{"..." if len(v) > 40 else ""}'
    return str(v)


def fsend_kwargs(ctx, side, **kw):
    if side == 's':
        kw.setdefault('destination_id', ctx.client_id)
    kw.setdefault('message_type', 'any')
    return kw


async def _file_one_way(ctx, src, dst, name, content, data, binary=None, delete=None, label='', quirk=False):
    path = f'{send_dir(ctx, src)}/{name}'
    with open(path, 'wb') as fd:
        fd.write(content)
    wf = {'src_path': path, 'dst_name': name, 'dst_type': 'any'}
    if delete is not None:
        wf['delete'] = delete
    kw = fsend_kwargs(ctx, src, data=data, with_file=dict(wf))
    if binary is not None:
        kw['binary'] = binary
    check(f'{label} send returns', await ctx.api[src].send_message(**kw), True)
    got = await ctx.recv(dst)
    want_wf = dict(wf)
    extra = {}
    if binary and content:
        want_wf['binary_offset'] = len(binary)
    if binary:
        extra['with_binary'] = True
    want_tj = tj_of(ctx, src, **extra)
    want_tj['with_file'] = want_wf
    if quirk:
        # reference: an EMPTY file with an app binary gets no binary_offset from the sender, so the receiver
        # takes the whole app binary as the file (written into it) and the app gets no binary at all
        del want_tj['with_binary']
        check(f'{label} received (reference quirk: app binary becomes the file)', got,
              (want_tj, json.dumps(data).encode(), None))
        await _check_file(f'{label} file written (= the app binary, reference quirk)',
                          f'{recv_dir(ctx, dst)}/{name}', binary)
    else:
        check(f'{label} received', got, (want_tj, json.dumps(data).encode(), binary if binary else None))
        await _check_file(f'{label} file written', f'{recv_dir(ctx, dst)}/{name}', content)
    kept = delete is False
    ok = await wait_path(path, exists=kept)
    check(f'{label} source {"kept (delete false)" if kept else "removed (delete absent)"}', ok, True)


@scenario(group='files')
async def file_small(ctx):
    """A small file each way; source deleted by default, kept with delete false."""
    for src, dst in (('c', 's'), ('s', 'c')):
        await _file_one_way(ctx, src, dst, f'small_{src}.txt', b'hello file\n\x00\xff' * 100, {'f': 'small'},
                            label=f'{src}->{dst} small')
        await _file_one_way(ctx, src, dst, f'kept_{src}.bin', os.urandom(5000), 'kept', delete=False,
                            label=f'{src}->{dst} delete=false')


@scenario(group='files')
async def file_empty(ctx):
    """An empty file each way: the receiver writes an empty file, no with_binary."""
    for src, dst in (('c', 's'), ('s', 'c')):
        await _file_one_way(ctx, src, dst, f'empty_{src}', b'', None, label=f'{src}->{dst} empty')


@scenario(group='files')
async def file_with_binary(ctx):
    """A file with an application binary alongside: binary_offset, the app gets only its binary."""
    for src, dst in (('c', 's'), ('s', 'c')):
        await _file_one_way(ctx, src, dst, f'wb_{src}.dat', os.urandom(70000), {'with': 'binary'},
                            binary=b'\x00APP\xffBIN', label=f'{src}->{dst} file+binary')
        await _file_one_way(ctx, src, dst, f'wbe_{src}.dat', b'', 'empty+bin', binary=b'APP',
                            label=f'{src}->{dst} empty file+binary', quirk=True)


CHUNK = '__aioconnectors_chunk'


async def _chunked(ctx, n):
    """Send a file as n chunks exactly as the 1.0.33 API does when a file reaches its chunk size (1 GB): chunk
    files <connector_files_dirpath>/<dst_name>__aioconnectors_chunk_<i>_<n>, one message per chunk with
    with_file.dst_name = that name and with_file.chunked = [<dst_name>__aioconnectors_chunk, i, n].
    The Python receiver concatenates the chunk files in lexicographic name order (for n >= 10 that is
    10, 11, 12, 1, 2, ... 9: a scrambled file); aioconn must use numeric order (the original file)."""
    for src, dst in (('c', 's'), ('s', 'c')):
        name = f'big{n}_{src}.bin'
        chunks = [os.urandom(1000 + i) for i in range(n)]
        base = f'{name}{CHUNK}'
        names = [f'{base}_{i + 1}_{n}' for i in range(n)]
        paths = []
        for cname, data in zip(names, chunks):
            p = f'{files_dir(ctx, src)}/{cname}'
            with open(p, 'wb') as fd:
                fd.write(data)
            paths.append(p)
        for i, (cname, p) in enumerate(zip(names, paths)):
            wf = {'src_path': p, 'dst_name': cname, 'dst_type': 'any', 'chunked': [base, i + 1, n]}
            res = await ctx.api[src].send_message(check_chunk_file=False,
                                                  **fsend_kwargs(ctx, src, data={'chunk': i + 1}, with_file=wf))
            if res is not True:
                raise Failure(f'{src}->{dst} chunk {i + 1}/{n} send returned {res!r}')
        for i, cname in enumerate(names):
            want_tj = tj_of(ctx, src)
            want_tj['with_file'] = {'src_path': paths[i], 'dst_name': cname, 'dst_type': 'any',
                                    'chunked': [base, i + 1, n]}
            check(f'{src}->{dst} chunk message {i + 1}/{n}', await ctx.recv(dst),
                  (want_tj, json.dumps({'chunk': i + 1}).encode(), None))
        dst_impl = col_impls()[1 if dst == 'c' else 0]
        if dst_impl == 'p':
            order = sorted(range(n), key=lambda i: names[i])   # the reference: sorted() of the chunk paths
            how = 'Python receiver: lexicographic chunk order' + (' (scrambled)' if n >= 10 else '')
        else:
            order = list(range(n))
            how = 'aioconn receiver: numeric chunk order'
        want = b''.join(chunks[i] for i in order)
        if n >= 10:
            check(f'{src}->{dst} n={n}: expected content differs from the original for a Python receiver only',
                  want != b''.join(chunks), dst_impl == 'p')
        await _check_file(f'{src}->{dst} reassembled ({how}, order {[i + 1 for i in order]})',
                          f'{recv_dir(ctx, dst)}/{name}', want)
        left = sorted(f for f in os.listdir(recv_dir(ctx, dst)) if CHUNK in f)
        if left:
            await asyncio.sleep(1.0)
            left = sorted(f for f in os.listdir(recv_dir(ctx, dst)) if CHUNK in f)
        check(f'{src}->{dst} receiver deleted its chunk files', left, [])
        for p in paths:
            if not await wait_path(p, exists=False):
                raise Failure(f'{src}->{dst} sender kept chunk file {p} (delete absent)')
        print(f'  ok  {src}->{dst} sender removed its {n} chunk files')


@scenario(group='files')
async def file_chunked_3(ctx):
    """Chunked transfer, 3 chunks, each way."""
    await _chunked(ctx, 3)


@scenario(group='files')
async def file_chunked_12(ctx):
    """Chunked transfer, 12 chunks, each way (numeric vs lexicographic reassembly, asserted per receiver)."""
    await _chunked(ctx, 12)


@scenario(group='files')
async def file_error_missing(ctx):
    """A missing source: the peer app gets the message with with_file.file_error and no file is written.
    (The 1.0.33 API itself stats src_path and raises for a missing file unless check_chunk_file=False, as
    its own chunk sends do; the connector's error path is reached that way.)"""
    for src, dst in (('c', 's'), ('s', 'c')):
        path = f'{send_dir(ctx, src)}/missing_{src}'
        wf = {'src_path': path, 'dst_name': f'missing_{src}', 'dst_type': 'any'}
        check(f'{src}->{dst} send returns', await ctx.api[src].send_message(
            check_chunk_file=False, **fsend_kwargs(ctx, src, data='m', with_file=dict(wf))), True)
        want_tj = tj_of(ctx, src)
        want_tj['with_file'] = dict(wf, file_error=f"[Errno 2] No such file or directory: '{path}'")
        check(f'{src}->{dst} received with file_error', await ctx.recv(dst), (want_tj, b'"m"', None))
        check(f'{src}->{dst} nothing written', os.path.exists(f'{recv_dir(ctx, dst)}/missing_{src}'), False)
        # traffic still flows on that link
        await ctx.roundtrip(f'{src} after file_error')


# -------------------------------------------- persist group -----------------------------------------------

PERSIST_MSGS = [
    dict(message_type='any', data={'n': 1, 'u': 'é'}),
    dict(message_type='any', data=b'raw \x00\xff', data_is_json=False),
    dict(message_type='other', data='with binary', data_is_json=False, binary=b'\x01\x02' * 500),
    dict(message_type='any', data={'n': 4}, request_id=44),
    # payload containing the reference's record separator (the reference rewrites it; see docs/persistence.md)
    dict(message_type='any', data='sep', data_is_json=False, binary=b'x@@@PERSISTENCE_SEPARATOR@@@y'),
    dict(message_type='any', data={'n': 6, 'big': 'z' * 100000}),
]


def persist_expect(ctx, src, kw, writer):
    extra = {}
    if 'request_id' in kw:
        extra['request_id'] = kw['request_id']
    if kw.get('binary'):
        extra['with_binary'] = True
    data = json.dumps(kw['data']).encode() if kw.get('data_is_json', True) else (
        kw['data'].encode() if isinstance(kw['data'], str) else kw['data'])
    binary = kw.get('binary')
    if writer == 'p' and binary:
        # the reference's separator scheme rewrites the payload (PEER-PROTOCOL 6.9); aioconn's format does not
        binary = binary.replace(b'@@@PERSISTENCE_SEPARATOR@@@', b'#@@PERSISTENCE_SEPARATOR@@#')
    return tj_of(ctx, src, kw['message_type'], **extra), data, binary


@scenario(timeout=60.0, group='persist', managed=True)
async def persist_server_send(ctx):
    """Server W (disk_persistence_send true) stores messages for absent client1; W is stopped (SIGTERM) and
    server R started on the same directory, port and config; client1 connects and gets the stored messages
    first, in order, then new traffic. The persistence file is removed after the replay."""
    await _persist(ctx, 's')


@scenario(timeout=60.0, group='persist', managed=True)
async def persist_client_send(ctx):
    """Client W (disk_persistence_send true) stores messages while no server exists; W is stopped and client R
    started on the same directory and config; then the server starts: R replays the stored messages first."""
    await _persist(ctx, 'c')


async def _persist(ctx, writer_side):
    w_impl, r_impl, peer_impl = col_impls()
    src, dst = writer_side, ('c' if writer_side == 's' else 's')
    role_cfg = 'server.json' if src == 's' else 'client.json'
    peer_cfg = 'client.json' if src == 's' else 'server.json'
    if src == 's':
        pfile = f'{ctx.dir}/s/connector_disk_persistence_send_from_127001_{ctx.port}_to_peer_client1'
    else:
        pfile = f'{ctx.dir}/c/connector_disk_persistence_send_from_client1_to_peer_127001{ctx.port}'
    # aioconn writes its own format unless told to hand the file to a Python connector
    # (AIOCONN_PERSISTENCE_FORMAT=python, connector/persistence.go)
    py_format_wanted = w_impl == 'p' or r_impl == 'p'
    w = spawn(ctx, w_impl, role_cfg, 'writer',
              env={'AIOCONN_PERSISTENCE_FORMAT': 'python'} if w_impl == 'g' and r_impl == 'p' else None)
    await wait_ready(ctx, w, role_cfg)
    if src == 'c':
        await asyncio.sleep(0.3)   # the writer client has tried (and failed) its first connection
    for i, kw in enumerate(PERSIST_MSGS):
        check(f'writer app send #{i + 1} to absent peer', await ctx.send(src, **dict(kw)), True)
    # wait until the file stops growing
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 5
    while time.monotonic() < deadline:
        size = os.path.getsize(pfile) if os.path.exists(pfile) else -1
        if size != last:
            last, stable_since = size, time.monotonic()
        elif size > 0 and time.monotonic() - stable_since > 0.5:
            break
        await asyncio.sleep(0.05)
    if last <= 0:
        raise Failure(f'writer ({w_impl}) wrote no persistence file {os.path.basename(pfile)}; files: '
                      f'{sorted(os.listdir(os.path.dirname(pfile)))}')
    print(f'  ..  writer stop: {await stop_proc(w)}')
    if not os.path.exists(pfile):
        raise Failure(f'persistence file {pfile} gone after the writer stopped')
    shutil.copy(pfile, f'{ctx.dir}/persistence_file_as_written')
    check('persistence file kept after stop', os.path.getsize(pfile) >= last, True)
    with open(pfile, 'rb') as fd:
        head = fd.read(27)
    fmt = 'python' if head == b'@@@PERSISTENCE_SEPARATOR@@@' else ('aioconn' if head.startswith(b'\x89AIOCP') else f'unknown {head[:12]!r}')
    print(f'  ..  persistence file written by {"Python" if w_impl == "p" else "aioconn"}: {os.path.getsize(pfile)} bytes, '
          f'{fmt} format')
    await ctx.listen(dst)
    if src == 's':
        r = spawn(ctx, r_impl, role_cfg, 'replayer')
        await wait_ready(ctx, r, role_cfg)
        peer = spawn(ctx, peer_impl, peer_cfg, 'peer')
        await wait_ready(ctx, peer, peer_cfg)
    else:
        peer = spawn(ctx, peer_impl, peer_cfg, 'peer')
        await wait_ready(ctx, peer, peer_cfg)
        r = spawn(ctx, r_impl, role_cfg, 'replayer')
        await wait_ready(ctx, r, role_cfg)
    await ctx.wait_connected()
    await ctx.listen(src)
    for i, kw in enumerate(PERSIST_MSGS):
        want = persist_expect(ctx, src, kw, 'p' if py_format_wanted else 'g')
        try:
            got = await ctx.recv(dst, kw['message_type'])
        except Failure as exc:
            # say what the replayer made of the file
            log = f'{ctx.dir}/{"s" if src == "s" else "c"}/aioconnectors.log'
            lines = [l.rstrip() for l in open(log, errors='replace') if 'ersist' in l][-4:] if os.path.exists(log) else []
            raise Failure(f'{exc} (replayed message #{i + 1} of {len(PERSIST_MSGS)}); replayer log: {lines}; '
                          f'file still there: {os.path.exists(pfile)}') from None
        check(f'replayed #{i + 1}', got, want)
    check('persistence file removed after replay', await wait_path(pfile, exists=False), True)
    await ctx.roundtrip('new traffic after replay')
    for side in 'sc':
        ctx.assert_empty(side, 'any')
        ctx.assert_empty(side, 'other')


# ----------------------------------------------------------------------------------------------------------

async def run_one(row, d):
    name = split_row(row)[0]
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
        if not SCENARIO_META[name]['managed']:
            took = await ctx.wait_connected()
            print(f'  ..  connected after {took:.2f}s')
            await ctx.listen('s')
            await ctx.listen('c')
        await asyncio.wait_for(fn(ctx), timeout)
    except asyncio.TimeoutError:
        raise Failure(f'scenario timed out after {timeout}s') from None
    finally:
        ctx.stop_listening()
    print(f'PASS {row} ({time.monotonic() - t0:.1f}s)')


def known_row(row):
    return any(row in group_rows(g) for g in GROUPS)


def main(argv):
    if len(argv) >= 2 and argv[1] == 'list':
        print('\n'.join(group_rows('p2p')))
        return 0
    if len(argv) == 3 and argv[1] == 'cells' and argv[2] in GROUPS:
        for row in group_rows(argv[2]):
            for col, _ in COLUMNS[argv[2]]:
                print(row, col)
        return 0
    if len(argv) == 3 and argv[1] == 'columns' and argv[2] in GROUPS:
        for col, label in COLUMNS[argv[2]]:
            print(col, label)
        return 0
    if len(argv) == 6 and argv[1] == 'prepare' and known_row(argv[2]):
        prepare(argv[2], argv[3], argv[4], int(argv[5]))
        return 0
    if len(argv) == 4 and argv[1] == 'run' and known_row(argv[2]):
        os.environ['IOP_ROW'] = argv[2]
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
