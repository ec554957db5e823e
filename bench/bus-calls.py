#!/usr/bin/python3
"""Bus-side figures: Set* calls/s and latency (incl. the state fsync), status
latency, ListProxies, restore time and RSS. Usage: bench/bus-calls.py [N]
(GATEWAYD may point at the binary; default build/daemon/gatewayd)."""
import os, subprocess, sys, tempfile, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'e2e'))
import gobus, redis
TMP = tempfile.mkdtemp(prefix='gw-bench-bus.')
GATEWAYD = os.environ.get('GATEWAYD', os.path.join(ROOT, 'build', 'daemon', 'gatewayd'))
sock = os.path.join(TMP, 'r.sock')
rp=subprocess.Popen(['redis-server','--port','0','--unixsocket',sock,'--save','','--appendonly','no'],stdout=subprocess.DEVNULL)
for _ in range(200):
    try: redis.Redis(unix_socket_path=sock).ping(); break
    except Exception: time.sleep(0.01)
open(os.path.join(TMP, 'gw.conf'),'w').write("[gateway]\nenabled = yes\ndomain = gw1.example.net\npublic_config = file\npublic_ipv4 = 203.0.113.10/24\ngateway_ipv4 = 203.0.113.1\n[names]\nvalidation = off\n[proxy]\nhttp_port = 0\nhttps_port = 0\n[metrics]\nlisten =\n")
subprocess.run(['rm', '-rf', os.path.join(TMP, 'state')])
gw=subprocess.Popen([GATEWAYD,'--broker','unix://'+sock,'--root',os.path.join(TMP, 'state'),'--config',os.path.join(TMP, 'gw.conf'),'--log-level','warning'])
bus=gobus.GoBus(sock)
for _ in range(100):
    try:
        if bus.status(timeout=1).ok: break
    except Exception: pass
N=int(sys.argv[1]) if len(sys.argv)>1 else 2000
lat=[]
t0=time.time()
for i in range(N):
    t=time.perf_counter()
    r=bus.set_named_proxy("37-%d-w%d"%(i,i), "w%d"%i, ["http://[300:1:2::3]:9000"])
    lat.append((time.perf_counter()-t)*1000)
    assert r.ok, r
el=time.time()-t0
lat.sort()
print("SetNamedProxy x%d: %.0f/s, p50 %.2f ms, p99 %.2f ms (incl. fsync of the state file)"%(N,N/el,lat[len(lat)//2],lat[int(len(lat)*0.99)]))
st=[]
for i in range(200):
    t=time.perf_counter(); assert bus.status().ok; st.append((time.perf_counter()-t)*1000)
st.sort(); print("status: p50 %.2f ms p99 %.2f ms"%(st[100],st[198]))
t=time.perf_counter(); r=bus.gw("ListProxies", timeout=30); print("ListProxies with %d: %.1f ms"%(len(r.data),(time.perf_counter()-t)*1000))
gw.terminate(); gw.wait()
# restart time
t=time.perf_counter()
gw=subprocess.Popen([GATEWAYD,'--broker','unix://'+sock,'--root',os.path.join(TMP, 'state'),'--config',os.path.join(TMP, 'gw.conf'),'--log-level','info'],stderr=subprocess.PIPE,text=True)
for line in gw.stderr:
    if 'Restored' in line:
        print("restore:", line.strip(), "after %.0f ms"%((time.perf_counter()-t)*1000)); break
rss=open('/proc/%d/status'%gw.pid).read()
print([l for l in rss.splitlines() if l.startswith('VmRSS')])
gw.terminate(); gw.wait(); rp.terminate()
subprocess.run(['rm', '-rf', TMP])
