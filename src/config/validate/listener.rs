//! `[[listener]]` tables: bind addresses, protocols, and what tcp listeners forward to.

use super::super::defaults as d;
use super::super::file::*;
use super::super::*;
use super::{valid_host_pattern, Span};
use super::{Checker, Result};
use toml::Spanned;

impl Checker<'_> {
    pub(super) fn listener(&self, i: usize, l: ListenerFile, ups: &[Upstream]) -> Result<Listener> {
        let key = |k: &str| format!("listener[{i}].{k}");
        if l.name.get_ref().is_empty() {
            return Err(self.at(&l.name, key("name"), "must not be empty"));
        }
        let bind = self.socket_addr(&l.bind, &key("bind"))?;
        let backlog = match l.backlog {
            None => d::BACKLOG,
            Some(b) if *b.get_ref() == 0 => {
                return Err(self.at(&b, key("backlog"), "must be at least 1"))
            }
            Some(b) => b.into_inner(),
        };
        let proto_name = l
            .protocol
            .as_ref()
            .map_or(d::LISTENER_PROTOCOL, |p| p.get_ref().as_str());
        let tcp_only = |v: Option<Span>, k: &str| -> Result<()> {
            match v {
                Some(span) if proto_name != "tcp" => {
                    Err(self.src.error(span, key(k), "only for protocol = \"tcp\""))
                }
                _ => Ok(()),
            }
        };
        tcp_only(l.upstream.as_ref().map(Spanned::span), "upstream")?;
        tcp_only(
            l.proxy_protocol.as_ref().map(Spanned::span),
            "proxy_protocol",
        )?;
        tcp_only(l.idle_timeout.as_ref().map(Spanned::span), "idle_timeout")?;
        tcp_only(l.splice.as_ref().map(Spanned::span), "splice")?;
        tcp_only(
            l.sni_routes
                .as_ref()
                .and_then(|m| m.values().next())
                .map(Spanned::span),
            "sni_routes",
        )?;
        let protocol = match proto_name {
            "http" => Protocol::Http,
            "tcp" => {
                if let Some(t) = &l.tls {
                    return Err(self.at(
                        t,
                        key("tls"),
                        "TLS termination is for http listeners; use sni_routes to pass TLS through",
                    ));
                }
                let upstream = match &l.upstream {
                    Some(u) => Some(self.upstream_ref(u, ups, &key("upstream"))?),
                    None => None,
                };
                let proxy_protocol = match &l.proxy_protocol {
                    None => ProxyProtocol::Off,
                    Some(p) => match p.get_ref().as_str() {
                        "off" => ProxyProtocol::Off,
                        "v1" => ProxyProtocol::V1,
                        "v2" => ProxyProtocol::V2,
                        other => {
                            return Err(self.at(
                                p,
                                key("proxy_protocol"),
                                format!("unknown value {other:?}: expected off, v1 or v2"),
                            ))
                        }
                    },
                };
                let mut sni_routes = Vec::new();
                for (name, target) in l.sni_routes.iter().flatten() {
                    let k = key(&format!("sni_routes.{name:?}"));
                    if !valid_host_pattern(name) && name != "*" {
                        return Err(self.at(target, k, format!("invalid server name {name:?}")));
                    }
                    sni_routes.push((
                        name.to_ascii_lowercase(),
                        self.upstream_ref(target, ups, &k)?,
                    ));
                }
                if upstream.is_none() && sni_routes.is_empty() {
                    return Err(self.at(
                        &l.name,
                        key("upstream"),
                        "a tcp listener needs `upstream` or `sni_routes`",
                    ));
                }
                let idle_timeout = match &l.idle_timeout {
                    None => d::TCP_IDLE_TIMEOUT,
                    Some(t) if t.get_ref().0.is_zero() => {
                        return Err(self.at(t, key("idle_timeout"), "must be longer than 0s"))
                    }
                    Some(t) => t.get_ref().0,
                };
                Protocol::Tcp(TcpForward {
                    upstream,
                    proxy_protocol,
                    sni_routes,
                    idle_timeout,
                    splice: l.splice.as_ref().map_or(d::SPLICE, |s| *s.get_ref()),
                })
            }
            other => {
                let p = l
                    .protocol
                    .as_ref()
                    .expect("a non-default protocol was written");
                return Err(self.at(
                    p,
                    key("protocol"),
                    format!("unknown protocol {other:?}: expected http or tcp"),
                ));
            }
        };
        let accept_proxy_protocol = match l.accept_proxy_protocol {
            None => None,
            Some(a) => Some(
                a.trusted
                    .iter()
                    .enumerate()
                    .map(|(j, n)| {
                        self.ip_net(n, &key(&format!("accept_proxy_protocol.trusted[{j}]")))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let tls = match l.tls {
            None => None,
            Some(t) => Some(self.listener_tls(t, &key)?),
        };
        let max_connections = match l.max_connections {
            None => None,
            Some(m) if *m.get_ref() == 0 => {
                return Err(self.at(&m, key("max_connections"), "must be at least 1"))
            }
            Some(m) => Some(m.into_inner()),
        };
        Ok(Listener {
            max_connections,
            name: l.name.into_inner(),
            bind,
            backlog,
            protocol,
            accept_proxy_protocol,
            tls,
        })
    }
}

impl Checker<'_> {
    /// `listener.tls`: every file is read and checked now (exists, parses, key matches cert), so
    /// `check` catches what `run` would fail on.
    fn listener_tls(
        &self,
        t: Spanned<ListenerTlsFile>,
        key: &dyn Fn(&str) -> String,
    ) -> Result<ListenerTls> {
        let span = t.span();
        let t = t.into_inner();
        let mut pairs = Vec::new();
        match (t.cert, t.key) {
            (Some(c), Some(k)) => pairs.push((c, k, "tls".to_string())),
            (None, None) => {}
            _ => {
                return Err(self
                    .src
                    .error(span, key("tls"), "`cert` and `key` go together"))
            }
        }
        for (j, c) in t.certs.into_iter().enumerate() {
            pairs.push((c.cert, c.key, format!("tls.certs[{j}]")));
        }
        if pairs.is_empty() {
            return Err(self.src.error(
                span,
                key("tls"),
                "needs `cert` and `key`, or [[listener.tls.certs]]",
            ));
        }
        let provider = crate::tls::certs::provider();
        let mut certs = Vec::new();
        for (c, k, at) in pairs {
            let cert = self.resolve_path(c.get_ref());
            let pkey = self.resolve_path(k.get_ref());
            crate::tls::certs::certificates(&cert)
                .map_err(|e| self.at(&c, key(&format!("{at}.cert")), e))?;
            crate::tls::certs::load(&cert, &pkey, &provider)
                .map_err(|e| self.at(&k, key(&format!("{at}.key")), e))?;
            certs.push((cert, pkey));
        }
        let handshake_timeout = match &t.handshake_timeout {
            None => d::TLS_HANDSHAKE_TIMEOUT,
            Some(h) if h.get_ref().0.is_zero() => {
                return Err(self.at(h, key("tls.handshake_timeout"), "must be longer than 0s"))
            }
            Some(h) => h.get_ref().0,
        };
        let min_version = match t.min_version.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None => tls_version(d::TLS_MIN_VERSION).expect("default TLS version parses"),
            Some((v, s)) => tls_version(s).ok_or_else(|| {
                self.at(
                    v,
                    key("tls.min_version"),
                    format!("unknown version {s:?}: expected \"1.2\" or \"1.3\" (older ones are never offered)"),
                )
            })?,
        };
        let alpn = match &t.alpn {
            None => d::TLS_ALPN.iter().map(|p| p.to_string()).collect(),
            Some(list) => {
                for p in list {
                    if p.get_ref() != "http/1.1" {
                        return Err(self.at(
                            p,
                            key("tls.alpn"),
                            format!("unsupported protocol {:?}: only \"http/1.1\" is served (h2 is not built yet)", p.get_ref()),
                        ));
                    }
                }
                list.iter().map(|p| p.get_ref().clone()).collect()
            }
        };
        let client_auth = match t.client_ca {
            None => {
                for (v, k) in [
                    (&t.client_auth, "tls.client_auth"),
                    (&t.client_subject_header, "tls.client_subject_header"),
                ] {
                    if let Some(v) = v {
                        return Err(self.at(v, key(k), "needs `client_ca`"));
                    }
                }
                None
            }
            Some(ca) => {
                let path = self.resolve_path(ca.get_ref());
                crate::tls::certs::roots(&path)
                    .map_err(|e| self.at(&ca, key("tls.client_ca"), e))?;
                let required = match t.client_auth.as_ref().map(|a| (a, a.get_ref().as_str())) {
                    None => d::TLS_CLIENT_AUTH == "required",
                    Some((_, "required")) => true,
                    Some((_, "optional")) => false,
                    Some((a, other)) => {
                        return Err(self.at(
                            a,
                            key("tls.client_auth"),
                            format!("unknown value {other:?}: expected required or optional"),
                        ))
                    }
                };
                let subject_header = match &t.client_subject_header {
                    None => d::TLS_CLIENT_SUBJECT_HEADER.to_string(),
                    Some(h) => super::httparse_token(h.get_ref())
                        .ok_or_else(|| {
                            self.at(
                                h,
                                key("tls.client_subject_header"),
                                format!("invalid header name {:?}", h.get_ref()),
                            )
                        })?
                        .to_ascii_lowercase(),
                };
                Some(ClientAuth {
                    ca: path,
                    required,
                    subject_header,
                })
            }
        };
        Ok(ListenerTls {
            certs,
            handshake_timeout,
            min_version,
            alpn,
            strict_sni: t.strict_sni.unwrap_or(d::TLS_STRICT_SNI),
            session_tickets: t.session_tickets.unwrap_or(d::TLS_SESSION_TICKETS),
            client_auth,
        })
    }
}

fn tls_version(s: &str) -> Option<TlsVersion> {
    match s {
        "1.2" => Some(TlsVersion::V12),
        "1.3" => Some(TlsVersion::V13),
        _ => None,
    }
}
