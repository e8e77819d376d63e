//! A stand-alone test upstream: answers every request with JSON naming itself.
//!
//! How to run:
//! ```text
//! cargo run --bin upstream -- --listen 127.0.0.1:8081 --name a
//! curl -i http://127.0.0.1:8081/anything
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8081".parse().expect("literal");
    let mut name = String::from("upstream");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v.parse().expect("--listen takes ip:port"),
            ("--name", Some(v)) => name = v,
            _ => {
                eprintln!("usage: upstream --listen IP:PORT --name NAME");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        println!("upstream {name} listening on {listen}");
        tests::upstream::serve(listener, name, Arc::new(Default::default())).await;
    });
}
