import json, os, sys, tempfile, asyncio, logging, warnings
warnings.simplefilter('ignore')
sys.path.insert(0, '/work/ref-1.0.33')
from aioconnectors.api import ConnectorManager, ConnectorAPI
cases = json.load(open(sys.argv[1]))
out = []
for case in cases:
    D = tempfile.mkdtemp(prefix='ac')
    cfg = json.loads(json.dumps(case['config']).replace('$D', D))
    cfg.setdefault('connector_files_dirpath', D)
    cfg.setdefault('default_logger_dirpath', D)
    cfg.setdefault('use_ssl', False)
    p = os.path.join(D, 'cfg.json')
    json.dump(cfg, open(p, 'w'))
    asyncio.set_event_loop(asyncio.new_event_loop())
    kind = case.get('kind', 'manager')
    if kind == 'manager':
        m = ConnectorManager(config_file_path=p, default_logger_dirpath=D, connector_files_dirpath=D)
        c = m.connector
    else:
        m = ConnectorAPI(config_file_path=p, default_logger_dirpath=D, connector_files_dirpath=D)
        c = m.connector
    r = dict(name=case['name'], kind=kind, config=case['config'], source_id=c.source_id, alnum_source_id=c.alnum_source_id,
             is_server=bool(c.is_server),
             send_message_types=list(c.send_message_types), recv_message_types=list(c.recv_message_types),
             uds_path_commander=c.uds_path_commander, uds_path_send_to_connector=c.uds_path_send_to_connector,
             uds_path_receive_from_connector=c.uds_path_receive_from_connector)
    if kind == 'manager':
        r['pubsub_central_broker'] = bool(c.pubsub_central_broker)
        if not c.is_server:
            r['subscribe_message_types'] = c.subscribe_message_types
    s = json.dumps(r).replace(D, '$D')
    out.append(json.loads(s))
    logging.getLogger('aioconnectors').handlers = []
json.dump(out, sys.stdout, indent=1, sort_keys=True)
