#!/usr/bin/env python3
"""Produce the persist golden files with the real aioconnectors 1.0.33.

Usage: PYTHONPATH=/path/to/aioconnectors-1.0.33 python3 gen_golden.py OUTDIR

Starts a server connector (use_ssl false, disk_persistence_send true) in a temp dir, sends messages
through ConnectorAPI to the absent client `client1` (so the connector appends them to its send
persistence file), then writes into OUTDIR:
  python1033_send_to_client1      the persistence file exactly as the connector wrote it
  python1033_frames               the frames the API sent, concatenated (each with its 4-byte prefix)
  python1033_loaded               what 1.0.33's loader yields for the file: each record split the way
                                  load_messages_from_persistence does, run through the connector's own
                                  unpack_message and re-packed with pack_message (prefix re-computed)
Only the public API and the connector's own pack/unpack functions are used.
"""
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile


async def main(outdir):
    from aioconnectors import ConnectorManager, ConnectorAPI
    tmp = tempfile.mkdtemp(prefix='acp')
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    cfg = {'is_server': True, 'server_sockaddr': ['127.0.0.1', port], 'use_ssl': False,
           'disk_persistence_send': True, 'connector_files_dirpath': tmp, 'default_logger_dirpath': tmp,
           'send_message_types': ['any', 'other'], 'recv_message_types': ['any'],
           'debug_msg_counts': False, 'silent': True}
    cfgpath = os.path.join(tmp, 'server.json')
    with open(cfgpath, 'w') as fd:
        json.dump(cfg, fd)
    mgr = ConnectorManager(config_file_path=cfgpath)
    await mgr.start_connector()
    api = ConnectorAPI(config_file_path=cfgpath)
    with open(os.path.join(tmp, 'a.txt'), 'w') as fd:
        fd.write('file content')
    sep = b'@@@PERSISTENCE_SEPARATOR@@@'
    msgs = [
        dict(message_type='any', data='hello'),
        dict(message_type='any', data={'k': 'v', 'n': 1}, request_id=7),
        dict(message_type='other', data='bin', data_is_json=False, binary=b'\x00\x01\x02\xff' * 10,
             request_id='r-1'),
        dict(message_type='any', data='', data_is_json=False),
        dict(message_type='any', data='caf\u00e9 \u2603', data_is_json=False, response_id=3),
        dict(message_type='any', data=b'x' + sep + b'y', data_is_json=False, binary=sep + sep),
        dict(message_type='any', data='f', data_is_json=False, await_response=False,
             with_file={'src_path': os.path.join(tmp, 'a.txt'), 'dst_type': 'any', 'dst_name': 'a.txt', 'delete': False}),
        dict(message_type='any', data='@@@PERSISTENCE_', data_is_json=False),
        dict(message_type='any', data='x' * 3000, data_is_json=False, binary=b'\x40' * 2050),
        dict(message_type='any', data='ack', data_is_json=False, wait_for_ack=True),
    ]
    frames = []
    for m in msgs:
        kw = dict(m)
        data = kw.pop('data')
        if kw.pop('data_is_json', True):
            data = json.dumps(data)
        frames.append(api.connector.pack_message(data=data, source_id=api.source_id, destination_id='client1',
                                                 **{k: v for k, v in kw.items()}))
        ok = await api.send_message(destination_id='client1', **m)
        assert ok, m
    path = os.path.join(tmp, 'connector_disk_persistence_send_from_127001_%d_to_peer_client1' % port)
    for _ in range(200):
        if os.path.exists(path) and open(path, 'rb').read().count(sep) >= len(msgs):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    content = open(path, 'rb').read()
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, 'python1033_send_to_client1'), 'wb') as fd:
        fd.write(content)
    with open(os.path.join(outdir, 'python1033_frames'), 'wb') as fd:
        fd.write(b''.join(frames))
    # The loader's split (file read in 1024-byte chunks, split on the separator).
    units = content[len(sep):].split(sep)
    loaded = []
    for u in units:
        tj, data, binary = api.connector.unpack_message(u)
        loaded.append(api.connector.pack_message(transport_json=tj, data=data, binary=binary))
    with open(os.path.join(outdir, 'python1033_loaded'), 'wb') as fd:
        fd.write(b''.join(loaded))
    shutil.rmtree(tmp, ignore_errors=True)
    print('records', len(units), 'file bytes', len(content))
    sys.stdout.flush()
    os._exit(0)  # the connector's tasks are not worth a clean shutdown here


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1]))
