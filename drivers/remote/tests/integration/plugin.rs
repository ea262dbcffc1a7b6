//! The test plugin: a network and IPAM driver speaking Docker's plugin protocol on a unix
//! socket, written against Docker's documented JSON (plain `serde_json::Value`, none of the
//! crate's own wire types). With a netlink handle it is a real driver: each network is a
//! bridge in the host namespace, and each join a veth pair with one end on the bridge and the
//! other handed to the controller (`InterfaceName {SrcName, DstPrefix}`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ipnet::{IpNet, Ipv4Net};
use libnetwork_osl::NetlinkHandle;
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio::task::{JoinHandle, JoinSet};

/// A misbehaviour for one method.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Refuse with `{"Err"/"Error": message}`, doing nothing.
    Refuse(&'static str),
    /// Do the work, then never answer.
    HangAfter,
    /// Do the work, then answer with something that is not JSON.
    GarbageAfter,
    /// Answer with a status and text, doing nothing.
    Status(u16, &'static str),
    /// Do the work, then answer this JSON instead of the normal answer.
    AnswerAfter(Value),
}

/// A network of the plugin.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub(crate) bridge: String,
}

/// An IPAM pool of the plugin.
#[derive(Debug, Clone)]
struct Pool {
    pool: Ipv4Net,
    range: Ipv4Net,
    allocated: BTreeSet<Ipv4Addr>,
}

/// The plugin's state, visible to the tests.
#[derive(Default)]
pub(crate) struct PluginState {
    implements: Vec<&'static str>,
    netlink: Option<NetlinkHandle>,
    capabilities: Mutex<Value>,
    faults: Mutex<HashMap<String, Fault>>,
    log: Mutex<Vec<(String, Value)>>,
    pub(crate) networks: Mutex<BTreeMap<String, Network>>,
    pub(crate) endpoints: Mutex<BTreeMap<String, Value>>,
    pub(crate) joined: Mutex<BTreeMap<String, String>>,
    pools: Mutex<BTreeMap<String, Pool>>,
    next_pool: Mutex<u8>,
}

impl PluginState {
    /// Makes `method` (`NetworkDriver.CreateEndpoint`) misbehave.
    pub(crate) fn fault(&self, method: &str, fault: Fault) {
        self.faults
            .lock()
            .unwrap()
            .insert(format!("/{method}"), fault);
    }

    /// Makes `method` behave again.
    pub(crate) fn heal(&self, method: &str) {
        self.faults.lock().unwrap().remove(&format!("/{method}"));
    }

    /// Sets the `NetworkDriver.GetCapabilities` answer.
    pub(crate) fn set_capabilities(&self, answer: Value) {
        *self.capabilities.lock().unwrap() = answer;
    }

    /// The bodies received for `method`, in order (`null` for an empty body).
    pub(crate) fn requests(&self, method: &str) -> Vec<Value> {
        let path = format!("/{method}");
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, body)| body.clone())
            .collect()
    }

    pub(crate) fn endpoint_ids(&self) -> Vec<String> {
        self.endpoints.lock().unwrap().keys().cloned().collect()
    }

    pub(crate) fn network_ids(&self) -> Vec<String> {
        self.networks.lock().unwrap().keys().cloned().collect()
    }

    pub(crate) fn pool_ids(&self) -> Vec<String> {
        self.pools.lock().unwrap().keys().cloned().collect()
    }

    pub(crate) fn allocated(&self, pool_id: &str) -> Vec<Ipv4Addr> {
        self.pools.lock().unwrap()[pool_id]
            .allocated
            .iter()
            .copied()
            .collect()
    }
}

/// A running test plugin.
pub(crate) struct TestPlugin {
    pub(crate) socket: PathBuf,
    pub(crate) state: Arc<PluginState>,
    task: JoinHandle<()>,
}

impl TestPlugin {
    /// Serves a plugin implementing `implements` on `socket`. With `netlink`, networks and
    /// joins make bridges and veth pairs through it.
    pub(crate) fn start(
        socket: &Path,
        implements: &[&'static str],
        netlink: Option<NetlinkHandle>,
    ) -> Self {
        let state = Arc::new(PluginState {
            implements: implements.to_vec(),
            netlink,
            capabilities: Mutex::new(json!({"Scope": "local"})),
            next_pool: Mutex::new(1),
            ..Default::default()
        });
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = UnixListener::bind(socket).unwrap();
        let router = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            // Connections are owned here: aborting the task is the plugin dying.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            socket: socket.to_path_buf(),
            state,
            task,
        }
    }

    /// Kills the plugin: open connections drop, the socket goes away.
    pub(crate) async fn kill(self) {
        let Self { socket, task, .. } = self;
        task.abort();
        let _ = task.await;
        let _ = std::fs::remove_file(socket);
    }
}

/// The plugin's error answer for a method.
fn refusal(path: &str, message: &str) -> Value {
    if path.starts_with("/IpamDriver.") {
        json!({ "Error": message })
    } else {
        json!({ "Err": message })
    }
}

async fn handle(State(state): State<Arc<PluginState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    state.log.lock().unwrap().push((path.clone(), body.clone()));

    let fault = state.faults.lock().unwrap().get(&path).cloned();
    match fault {
        Some(Fault::Refuse(message)) => return reply(refusal(&path, message)),
        Some(Fault::Status(status, text)) => {
            return (
                axum::http::StatusCode::from_u16(status).unwrap(),
                text.to_owned(),
            )
                .into_response();
        }
        _ => {}
    }
    let answer = match dispatch(&state, &path, &body).await {
        Ok(answer) => answer,
        Err(message) => refusal(&path, &message),
    };
    match fault {
        Some(Fault::HangAfter) => std::future::pending().await,
        Some(Fault::GarbageAfter) => "<html>503 Service Unavailable</html>".into_response(),
        Some(Fault::AnswerAfter(value)) => reply(value),
        _ => reply(answer),
    }
}

fn reply(value: Value) -> Response {
    (
        [("content-type", "application/vnd.docker.plugins.v1.2+json")],
        value.to_string(),
    )
        .into_response()
}

fn text(body: &Value, field: &str) -> String {
    body.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Short names for kernel objects (interface names have at most 15 bytes).
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

async fn dispatch(state: &PluginState, path: &str, body: &Value) -> Result<Value, String> {
    let method = path.trim_start_matches('/');
    match method {
        "Plugin.Activate" => Ok(json!({ "Implements": state.implements })),
        "NetworkDriver.GetCapabilities" => Ok(state.capabilities.lock().unwrap().clone()),
        "NetworkDriver.CreateNetwork" => create_network(state, body).await,
        "NetworkDriver.DeleteNetwork" => delete_network(state, body).await,
        "NetworkDriver.CreateEndpoint" => {
            let id = text(body, "EndpointID");
            let mut endpoints = state.endpoints.lock().unwrap();
            if endpoints.contains_key(&id) {
                return Err(format!("endpoint {id} exists"));
            }
            endpoints.insert(id.clone(), body.clone());
            // Like many plugins, fill in a MAC when none was given: 02:42:c0:a8:00:<n>.
            let mac = text(&body["Interface"], "MacAddress");
            if mac.is_empty() {
                let mac = format!("02:42:c0:a8:00:{:02x}", endpoints.len());
                Ok(json!({"Interface": {"MacAddress": mac}}))
            } else {
                Ok(json!({"Interface": null}))
            }
        }
        "NetworkDriver.DeleteEndpoint" => {
            let id = text(body, "EndpointID");
            match state.endpoints.lock().unwrap().remove(&id) {
                Some(_) => Ok(json!({})),
                None => Err(format!("endpoint {id} not found")),
            }
        }
        "NetworkDriver.EndpointOperInfo" => {
            let id = text(body, "EndpointID");
            Ok(json!({"Value": {"endpoint": id, "plugin": "test"}}))
        }
        "NetworkDriver.Join" => join(state, body).await,
        "NetworkDriver.Leave" => leave(state, body).await,
        "NetworkDriver.ProgramExternalConnectivity"
        | "NetworkDriver.RevokeExternalConnectivity"
        | "NetworkDriver.DiscoverNew"
        | "NetworkDriver.DiscoverDelete"
        | "NetworkDriver.FreeNetwork" => Ok(json!({})),
        "NetworkDriver.AllocateNetwork" => Ok(json!({"Options": {"vni": "4097"}})),
        "IpamDriver.GetCapabilities" => Ok(json!({"RequiresMACAddress": true})),
        "IpamDriver.GetDefaultAddressSpaces" => Ok(json!({
            "LocalDefaultAddressSpace": "plugin-local",
            "GlobalDefaultAddressSpace": "plugin-global"
        })),
        "IpamDriver.RequestPool" => request_pool(state, body),
        "IpamDriver.ReleasePool" => {
            let id = text(body, "PoolID");
            match state.pools.lock().unwrap().remove(&id) {
                Some(_) => Ok(json!({})),
                None => Err(format!("pool {id} not found")),
            }
        }
        "IpamDriver.RequestAddress" => request_address(state, body),
        "IpamDriver.ReleaseAddress" => {
            let id = text(body, "PoolID");
            let address: Ipv4Addr = text(body, "Address")
                .parse()
                .map_err(|_| "bad address".to_owned())?;
            let mut pools = state.pools.lock().unwrap();
            let pool = pools.get_mut(&id).ok_or(format!("pool {id} not found"))?;
            pool.allocated.remove(&address);
            Ok(json!({}))
        }
        _ => Err(format!("unknown method {method}")),
    }
}

async fn create_network(state: &PluginState, body: &Value) -> Result<Value, String> {
    let id = text(body, "NetworkID");
    let bridge = format!("tb-{}", short(&id));
    if let Some(netlink) = &state.netlink {
        let link = netlink
            .create_bridge(&bridge)
            .await
            .map_err(|e| e.to_string())?;
        netlink
            .set_up(&link, true)
            .await
            .map_err(|e| e.to_string())?;
    }
    state
        .networks
        .lock()
        .unwrap()
        .insert(id, Network { bridge });
    Ok(json!({}))
}

async fn delete_network(state: &PluginState, body: &Value) -> Result<Value, String> {
    let id = text(body, "NetworkID");
    let network = state
        .networks
        .lock()
        .unwrap()
        .remove(&id)
        .ok_or(format!("network {id} not found"))?;
    if let Some(netlink) = &state.netlink {
        let link = netlink
            .link_by_name(&network.bridge)
            .await
            .map_err(|e| e.to_string())?;
        netlink
            .delete_link(&link)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(json!({}))
}

async fn join(state: &PluginState, body: &Value) -> Result<Value, String> {
    let network_id = text(body, "NetworkID");
    let endpoint_id = text(body, "EndpointID");
    let bridge = state
        .networks
        .lock()
        .unwrap()
        .get(&network_id)
        .map(|n| n.bridge.clone())
        .ok_or(format!("network {network_id} not found"))?;
    if !state.endpoints.lock().unwrap().contains_key(&endpoint_id) {
        return Err(format!("endpoint {endpoint_id} not found"));
    }
    let host_end = format!("vh-{}", short(&endpoint_id));
    let container_end = format!("vc-{}", short(&endpoint_id));
    if let Some(netlink) = &state.netlink {
        let host = netlink
            .create_veth(&host_end, &container_end, None)
            .await
            .map_err(|e| e.to_string())?;
        let master = netlink
            .link_by_name(&bridge)
            .await
            .map_err(|e| e.to_string())?;
        netlink
            .set_master(&host, &master)
            .await
            .map_err(|e| e.to_string())?;
        netlink
            .set_up(&host, true)
            .await
            .map_err(|e| e.to_string())?;
    }
    state
        .joined
        .lock()
        .unwrap()
        .insert(endpoint_id, text(body, "SandboxKey"));
    Ok(json!({
        "InterfaceName": {"SrcName": container_end, "DstPrefix": "eth"},
        "Gateway": "",
        "StaticRoutes": [{"Destination": "198.51.100.0/24", "RouteType": 1, "NextHop": ""}],
        "DisableGatewayService": true
    }))
}

async fn leave(state: &PluginState, body: &Value) -> Result<Value, String> {
    let endpoint_id = text(body, "EndpointID");
    state
        .joined
        .lock()
        .unwrap()
        .remove(&endpoint_id)
        .ok_or(format!("endpoint {endpoint_id} is not joined"))?;
    if let Some(netlink) = &state.netlink {
        // Deleting the host end deletes the pair, wherever the other end is.
        let host_end = format!("vh-{}", short(&endpoint_id));
        if let Ok(link) = netlink.link_by_name(&host_end).await {
            netlink
                .delete_link(&link)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(json!({}))
}

fn request_pool(state: &PluginState, body: &Value) -> Result<Value, String> {
    if body["V6"].as_bool() == Some(true) {
        return Err("this plugin has no IPv6 pools".to_owned());
    }
    let space = text(body, "AddressSpace");
    let pool: Ipv4Net = match text(body, "Pool").as_str() {
        "" => {
            let mut next = state.next_pool.lock().unwrap();
            let pool = format!("10.200.{next}.0/24").parse().unwrap();
            *next += 1;
            pool
        }
        given => given.parse().map_err(|_| format!("bad pool {given}"))?,
    };
    let sub = text(body, "SubPool");
    let range: Ipv4Net = if sub.is_empty() {
        pool
    } else {
        sub.parse().map_err(|_| format!("bad sub-pool {sub}"))?
    };
    let id = format!("{space}/{pool}/{range}");
    let mut pools = state.pools.lock().unwrap();
    if pools.contains_key(&id) {
        return Err(format!("pool {pool} is in use"));
    }
    pools.insert(
        id.clone(),
        Pool {
            pool,
            range,
            allocated: BTreeSet::new(),
        },
    );
    let gateway = format!("{}/{}", first_host(&pool), pool.prefix_len());
    Ok(json!({
        "PoolID": id,
        "Pool": pool.to_string(),
        "Data": {"com.docker.network.gateway": gateway}
    }))
}

fn first_host(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

fn request_address(state: &PluginState, body: &Value) -> Result<Value, String> {
    let id = text(body, "PoolID");
    let mut pools = state.pools.lock().unwrap();
    let pool = pools.get_mut(&id).ok_or(format!("pool {id} not found"))?;
    let options = &body["Options"];
    let preferred = text(body, "Address");
    let address = if !preferred.is_empty() {
        let address: Ipv4Addr = preferred
            .parse()
            .map_err(|_| format!("bad address {preferred}"))?;
        if !pool.pool.contains(&address) {
            return Err(format!("{address} is outside {}", pool.pool));
        }
        if pool.allocated.contains(&address) {
            return Err(format!("{address} is in use"));
        }
        address
    } else if options["RequestAddressType"] == "com.docker.network.gateway" {
        first_host(&pool.pool)
    } else if options["give-nothing"] == "true" {
        return Ok(json!({"Address": ""}));
    } else {
        pool.range
            .hosts()
            .find(|a| *a != first_host(&pool.pool) && !pool.allocated.contains(a))
            .ok_or("no free address".to_owned())?
    };
    pool.allocated.insert(address);
    let mut data = serde_json::Map::new();
    if let Some(mac) = options.get("com.docker.network.endpoint.macaddress") {
        data.insert("mac".into(), mac.clone());
    }
    Ok(json!({
        "Address": format!("{address}/{}", pool.pool.prefix_len()),
        "Data": data
    }))
}

/// The network of an IPv4 address with prefix.
pub(crate) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// An address.
pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
