# Runs a real aioconnectors 1.0.33 server and client (use_ssl=True, strict) on a certificates
# tree, both in this process, and prints "CONNECTED <peers>" once the server has identified the
# client "client1" (or "NOT CONNECTED <peers>"). Used by tls/python_test.go only.
# argv: <certificates base dir> <work dir> <port> [<seconds to wait, default 30>]
import asyncio, os, sys

import aioconnectors


async def main(tree, work, port, wait):
    common = dict(use_ssl=True, ssl_allow_all=False, certificates_directory_path=tree,
                  server_sockaddr=('127.0.0.1', port), send_message_types=['any'], recv_message_types=['any'],
                  uds_path_receive_preserve_socket=True, uds_path_send_preserve_socket=True)
    srv = aioconnectors.ConnectorManager(is_server=True, connector_files_dirpath=os.path.join(work, 's'),
                                         default_logger_dirpath=os.path.join(work, 's'), **common)
    await srv.start_connector()
    cli = aioconnectors.ConnectorManager(is_server=False, client_name='client1',
                                         connector_files_dirpath=os.path.join(work, 'c'),
                                         default_logger_dirpath=os.path.join(work, 'c'), **common)
    await cli.start_connector()
    peers = []
    for _ in range(int(wait * 10)):
        peers = srv.show_connected_peers()
        if peers == ['client1']:
            break
        await asyncio.sleep(0.1)
    print(('CONNECTED ' if peers == ['client1'] else 'NOT CONNECTED ') + repr(peers), flush=True)
    await cli.stop_connector(shutdown=True)
    await srv.stop_connector(shutdown=True)


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 30))
