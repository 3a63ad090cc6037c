//! The `shop.Catalog` gRPC service, written by hand the way `tonic-build` would generate it, so
//! that nothing needs `protoc`:
//!
//! ```proto
//! package shop;
//! service Catalog {
//!   rpc GetProduct(GetProductRequest) returns (Product);                  // unary
//!   rpc ListProducts(ListProductsRequest) returns (stream Product);       // server streaming
//! }
//! message GetProductRequest { uint64 id = 1; }
//! message ListProductsRequest { uint64 count = 1; }
//! message Product { uint64 id = 1; string name = 2; uint64 price_cents = 3; }
//! ```
//!
//! Shared by `examples/grpc/main.rs` and `tests/grpc.rs`.

// Each user of this file uses a part of it.
#![allow(dead_code)]

use http::uri::PathAndQuery;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tonic::codegen::tokio_stream;
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetProductRequest {
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListProductsRequest {
    #[prost(uint64, tag = "1")]
    pub count: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Product {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(uint64, tag = "3")]
    pub price_cents: u64,
}

/// The full method paths, which are also the HTTP/2 request paths (and the cache's routes).
pub const GET_PRODUCT: &str = "/shop.Catalog/GetProduct";
pub const LIST_PRODUCTS: &str = "/shop.Catalog/ListProducts";

/// The server: products 1 to 1000 exist; every call counts as one execution.
#[derive(Clone, Default)]
pub struct Catalog {
    executions: Arc<AtomicUsize>,
}

impl Catalog {
    /// How many calls reached the service.
    pub fn executions(&self) -> usize {
        self.executions.load(Ordering::SeqCst)
    }

    fn product(id: u64) -> Result<Product, tonic::Status> {
        if !(1..=1000).contains(&id) {
            return Err(tonic::Status::not_found(format!("no product {id}")));
        }
        Ok(Product {
            id,
            name: format!("product {id}"),
            price_cents: 100 * id,
        })
    }
}

type Answer =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

impl<B> tower::Service<http::Request<B>> for Catalog
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Answer {
        let path = request.uri().path();
        if path != GET_PRODUCT && path != LIST_PRODUCTS {
            return Box::pin(async {
                Ok(tonic::Status::unimplemented("no such method").into_http())
            });
        }
        self.executions.fetch_add(1, Ordering::SeqCst);
        if path == GET_PRODUCT {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
            let method = tower::service_fn(|call: tonic::Request<GetProductRequest>| async move {
                Catalog::product(call.into_inner().id).map(tonic::Response::new)
            });
            return Box::pin(async move { Ok(grpc.unary(method, request).await) });
        }
        let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
        let method = tower::service_fn(|call: tonic::Request<ListProductsRequest>| async move {
            let products: Vec<_> = (1..=call.into_inner().count)
                .map(Catalog::product)
                .collect();
            Ok::<_, tonic::Status>(tonic::Response::new(tokio_stream::iter(products)))
        });
        Box::pin(async move { Ok(grpc.server_streaming(method, request).await) })
    }
}

impl tonic::server::NamedService for Catalog {
    const NAME: &'static str = "shop.Catalog";
}

/// The client.
#[derive(Clone)]
pub struct CatalogClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl CatalogClient {
    /// Connects to `http://host:port` (HTTP/2 over TCP).
    pub async fn connect(address: String) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::new(address)?.connect().await?;
        Ok(CatalogClient {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    pub async fn get_product(
        &mut self,
        request: impl tonic::IntoRequest<GetProductRequest>,
    ) -> Result<tonic::Response<Product>, tonic::Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static(GET_PRODUCT);
        let codec = ProstCodec::default();
        self.grpc.unary(request.into_request(), path, codec).await
    }

    pub async fn list_products(
        &mut self,
        request: impl tonic::IntoRequest<ListProductsRequest>,
    ) -> Result<tonic::Response<tonic::codec::Streaming<Product>>, tonic::Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static(LIST_PRODUCTS);
        let codec = ProstCodec::default();
        self.grpc
            .server_streaming(request.into_request(), path, codec)
            .await
    }

    async fn ready(&mut self) -> Result<(), tonic::Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))
    }
}
