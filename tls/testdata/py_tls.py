# Python ssl peers configured like aioconnectors 1.0.33 (A/core.py:1574-1611), for tls/python_test.go.
#   server <certificates base dir>: listen on 127.0.0.1:0, print the port, accept one connection,
#       handshake, send the client's certificate serial + "\n", close.
#   client <certificates base dir> <port> <client_name>: connect, handshake (no SNI), print the
#       server certificate's serial, read one line from the server and print it.
import os, socket, ssl, sys

mode, base = sys.argv[1], os.path.join(sys.argv[2], 'certificates')
if mode == 'server':
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(base, 'server/server-cert/server.pem'), os.path.join(base, 'server/server-cert/server.key'))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(capath=os.path.join(base, 'server/client-certs/symlinks'))
    ls = socket.create_server(('127.0.0.1', 0))
    print(ls.getsockname()[1], flush=True)
    conn, _ = ls.accept()
    try:
        s = ctx.wrap_socket(conn, server_side=True)
        s.sendall((s.getpeercert()['serialNumber'] + '\n').encode())
        s.close()
    except Exception as exc:
        print('ERROR', exc, flush=True)
        conn.close()
else:
    port, name = int(sys.argv[3]), sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS)
    ctx.verify_mode = ssl.CERT_REQUIRED
    own = os.path.join(base, 'client/client-certs', name + '.pem')
    stem = name if os.path.exists(own) else 'default'
    ctx.load_cert_chain(os.path.join(base, 'client/client-certs', stem + '.pem'), os.path.join(base, 'client/client-certs', stem + '.key'))
    ctx.load_verify_locations(cafile=os.path.join(base, 'client/server-cert/server.crt'))
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)), server_hostname=None)
    print(s.getpeercert()['serialNumber'], flush=True)
    print(s.makefile().readline().strip(), flush=True)
