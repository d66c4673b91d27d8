//! The remote form of a module contract: one `POST /internal/<module>/<operation>` per trait method.
//!
//! [`contract!`](crate::contract) writes the trait, its HTTP client and its server-side dispatcher from one
//! list of methods, so the remote side can never fall behind the trait.

use std::fmt;

/// Header carrying the service credential on `/internal` calls.
pub const SERVICE_TOKEN_HEADER: &str = "x-shop-service-token";
/// Header naming the calling service when it presents its own credential (per-service mode).
pub const SERVICE_NAME_HEADER: &str = "x-shop-service";
/// Header saying who makes the call: `client`, or `module:<name>` (see `RequestContext::origin`).
pub const ORIGIN_HEADER: &str = "x-shop-origin";
/// Header carrying the caller's remaining time budget in milliseconds.
pub const DEADLINE_HEADER: &str = "x-shop-deadline-ms";
/// Header carrying the end client's address (throttling must see the client, not the calling service).
pub const CLIENT_ADDR_HEADER: &str = "x-shop-client-addr";
/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether a failed remote call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads nothing but state: always safe to repeat.
    Read,
    /// Writes, but repeating it has the same effect as doing it once (idempotent by key or by nature).
    Idempotent,
    /// Repeating it could apply it twice: retried only when the request never reached the server.
    Once,
}

/// One operation of a contract, as listed in its OpenAPI document.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// Method name, the last path segment.
    pub name: &'static str,
    /// Retry class.
    pub retry: Retry,
    /// Argument list as written in the trait (`sku: String, delta: i64`).
    pub args: &'static str,
    /// Result type as written in the trait.
    pub returns: &'static str,
    /// The method's doc comment.
    pub doc: &'static str,
    /// Who may call it.
    pub access: &'static [crate::access::Allow],
}

/// Why an `/internal` call could not be answered with the operation's own result.
#[derive(Debug)]
pub enum DispatchError<E> {
    /// No operation of that name, or one that is not served over HTTP (404 `unknown_operation`).
    UnknownOperation(String),
    /// The arguments did not match the operation's parameters (400 `bad_call`).
    BadArguments(String),
    /// The result could not be encoded (500).
    Encode(String),
    /// The operation itself failed.
    Api(E),
}

impl<E: fmt::Display> fmt::Display for DispatchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DispatchError::UnknownOperation(op) => write!(f, "unknown operation {op}"),
            DispatchError::BadArguments(e) => write!(f, "bad arguments: {e}"),
            DispatchError::Encode(e) => write!(f, "cannot encode result: {e}"),
            DispatchError::Api(e) => e.fmt(f),
        }
    }
}

/// Declares a module contract: the async trait, the [`Operation`] list, the server-side `dispatch`
/// function and (with the module's `client` feature) an HTTP client implementing the trait.
///
/// Each method is prefixed with its retry class (`Read`, `Idempotent` or `Once`), ends with the callers it
/// admits (`for [Anyone]`, `for [Admin]`, `for [User, Module("ordering")]`, `for [System]`: see
/// [`Allow`](crate::access::Allow)) and may only carry doc comments.
///
/// Compatibility of `/internal` across rolling deploys: a server ignores arguments it does not know, and an
/// argument added to an existing method must be an `Option` (absent means `None`), so old and new callers
/// and servers can talk during a deploy. Removing or retyping an argument needs a new method.
#[macro_export]
macro_rules! contract {
    (
        $(#[doc = $tdoc:literal])*
        pub trait $trait:ident {
            module = $module:literal;
            error = $err:ty;
            client = $client:ident;
            $(
                $(#[doc = $doc:literal])*
                $retry:ident fn $name:ident ( $( $arg:ident : $aty:ty ),* $(,)? ) -> $out:ty, for [ $($allow:tt)* ];
            )*
        }
    ) => {
        $(#[doc = $tdoc])*
        #[$crate::__private::async_trait]
        pub trait $trait: Send + Sync {
            $(
                $(#[doc = $doc])*
                async fn $name(&self, ctx: &$crate::RequestContext, $($arg: $aty),*) -> ::std::result::Result<$out, $err>;
            )*
        }

        /// The module's name, the path segment of its `/internal` operations.
        pub const MODULE: &str = $module;

        /// The contract's operations, each served as `POST /internal/<module>/<operation>`.
        pub const OPERATIONS: &[$crate::rpc::Operation] = &[
            $(
                $crate::rpc::Operation {
                    name: stringify!($name),
                    retry: $crate::rpc::Retry::$retry,
                    args: stringify!($($arg: $aty),*),
                    returns: stringify!($out),
                    doc: concat!($($doc, "\n"),*),
                    access: {
                        #[allow(unused_imports)]
                        use $crate::access::Allow::*;
                        &[$($allow)*]
                    },
                },
            )*
        ];

        /// Runs one `/internal` operation: decodes its arguments, calls the trait, encodes the result.
        pub async fn dispatch(
            api: &dyn $trait,
            ctx: &$crate::RequestContext,
            operation: &str,
            args: $crate::__private::serde_json::Value,
        ) -> ::std::result::Result<$crate::__private::serde_json::Value, $crate::rpc::DispatchError<$err>> {
            match operation {
                $(
                    stringify!($name) => {
                        #[allow(unused_imports)]
                        use $crate::access::Allow::*;
                        const ACCESS: &[$crate::access::Allow] = &[$($allow)*];
                        if !$crate::access::reachable_over_http(ACCESS) {
                            return Err($crate::rpc::DispatchError::UnknownOperation(operation.to_string()));
                        }
                        $crate::access::check(ACCESS, ctx)
                            .map_err(|denied| $crate::rpc::DispatchError::Api(<$err>::from(denied)))?;
                        // Tolerant reader: unknown arguments (from a newer caller) are ignored.
                        #[derive(::serde::Deserialize)]
                        struct Args { $($arg: $aty,)* }
                        #[allow(unused_variables)]
                        let args: Args = $crate::__private::serde_json::from_value(args)
                            .map_err(|e| $crate::rpc::DispatchError::BadArguments(e.to_string()))?;
                        let out = api.$name(ctx, $(args.$arg),*).await.map_err($crate::rpc::DispatchError::Api)?;
                        $crate::__private::serde_json::to_value(out)
                            .map_err(|e| $crate::rpc::DispatchError::Encode(e.to_string()))
                    }
                )*
                other => Err($crate::rpc::DispatchError::UnknownOperation(other.to_string())),
            }
        }

        #[doc = concat!("`", stringify!($trait), "` behind its access rules, with a tracing span and an observer record around every call.")]
        pub struct Observed {
            inner: ::std::sync::Arc<dyn $trait>,
            transport: $crate::observe::Transport,
            observer: ::std::sync::Arc<dyn $crate::observe::CallObserver>,
        }

        impl Observed {
            /// Wraps an implementation reached over `transport`.
            pub fn new(
                inner: ::std::sync::Arc<dyn $trait>,
                transport: $crate::observe::Transport,
                observer: ::std::sync::Arc<dyn $crate::observe::CallObserver>,
            ) -> Self {
                Observed { inner, transport, observer }
            }
        }

        #[$crate::__private::async_trait]
        impl $trait for Observed {
            $(
                async fn $name(&self, ctx: &$crate::RequestContext, $($arg: $aty),*) -> ::std::result::Result<$out, $err> {
                    #[allow(unused_imports)]
                    use $crate::access::Allow::*;
                    const ACCESS: &[$crate::access::Allow] = &[$($allow)*];
                    $crate::access::check(ACCESS, ctx).map_err(<$err>::from)?;
                    let span = $crate::__private::tracing::info_span!(
                        "module_call",
                        module = $module,
                        operation = stringify!($name),
                        transport = self.transport.as_str(),
                    );
                    let started = ::std::time::Instant::now();
                    let result = $crate::__private::tracing::Instrument::instrument(
                        self.inner.$name(ctx, $($arg),*),
                        span,
                    )
                    .await;
                    let code: ::std::borrow::Cow<'static, str> = match &result {
                        Ok(_) => ::std::borrow::Cow::Borrowed("ok"),
                        Err(e) => ::std::borrow::Cow::Owned($crate::ApiError::to_problem(e).code),
                    };
                    self.observer.record(&$crate::observe::CallRecord {
                        module: $module,
                        operation: stringify!($name),
                        transport: self.transport,
                        outcome: &code,
                        elapsed: started.elapsed(),
                    });
                    result
                }
            )*
        }

        /// Serves one `/internal` operation for another service (the service credential is required).
        #[cfg(feature = "server")]
        pub async fn internal_call(
            ctx: $crate::http::InternalContext,
            api: $crate::__private::actix_web::web::Data<dyn $trait>,
            operation: $crate::__private::actix_web::web::Path<String>,
            body: $crate::__private::actix_web::web::Bytes,
        ) -> ::std::result::Result<$crate::__private::actix_web::HttpResponse, $crate::http::HttpProblem> {
            let args = $crate::http::rpc_arguments(&body)?;
            $crate::http::rpc_response(dispatch(api.get_ref(), &ctx.0, &operation, args).await)
        }

        /// Answers an authenticated readiness probe: this process serves the module and accepts the caller.
        #[cfg(feature = "server")]
        pub async fn internal_probe(
            _ctx: $crate::http::InternalContext,
        ) -> $crate::__private::actix_web::HttpResponse {
            $crate::http::probe_response($module, OPERATIONS)
        }

        /// Registers `POST /internal/<module>/{operation}` and the probe `GET /internal/<module>` (needs the
        /// API and the `ServiceAuth` in app data).
        #[cfg(feature = "server")]
        pub fn internal_routes(cfg: &mut $crate::__private::actix_web::web::ServiceConfig) {
            cfg.route(
                concat!("/internal/", $module, "/{operation}"),
                $crate::__private::actix_web::web::post().to(internal_call),
            )
            .route(
                concat!("/internal/", $module),
                $crate::__private::actix_web::web::get().to(internal_probe),
            );
        }

        #[cfg(feature = "client")]
        #[doc = concat!("`", stringify!($trait), "` over HTTP, against a server of the `", $module, "` module.")]
        #[derive(Clone)]
        pub struct $client {
            rpc: $crate::rpc::RpcClient,
        }

        #[cfg(feature = "client")]
        impl $client {
            /// A client calling the module at the RPC client's base URL.
            pub fn new(rpc: $crate::rpc::RpcClient) -> Self {
                $client { rpc }
            }

            /// The underlying RPC client (base URL, health checks).
            pub fn rpc(&self) -> &$crate::rpc::RpcClient {
                &self.rpc
            }
        }

        #[cfg(feature = "client")]
        #[$crate::__private::async_trait]
        impl $trait for $client {
            $(
                async fn $name(&self, ctx: &$crate::RequestContext, $($arg: $aty),*) -> ::std::result::Result<$out, $err> {
                    #[allow(unused_imports)]
                    use $crate::access::Allow::*;
                    const ACCESS: &[$crate::access::Allow] = &[$($allow)*];
                    // The system's authority never crosses a process boundary; other denials are decided
                    // here as the server would, without a round trip.
                    if !$crate::access::reachable_over_http(ACCESS) {
                        return Err(<$err>::from($crate::AccessDenied::Forbidden));
                    }
                    $crate::access::check(ACCESS, ctx).map_err(<$err>::from)?;
                    #[derive(::serde::Serialize)]
                    struct Args<'a> {
                        $($arg: &'a $aty,)*
                        #[serde(skip)]
                        _borrow: ::std::marker::PhantomData<&'a ()>,
                    }
                    let args = Args { $($arg: &$arg,)* _borrow: ::std::marker::PhantomData };
                    self.rpc
                        .call($module, ctx, stringify!($name), $crate::rpc::Retry::$retry, &args)
                        .await
                }
            )*
        }
    };
}

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
pub use client::{OutgoingCredential, RpcClient, RpcConfig};
