//! Test builds without `LEADGRAPH_TEST_POSTGRES_URL` mark the PostgreSQL tests as ignored,
//! with the reason, so `cargo test` reports them as not run instead of as passed.

fn main() {
    println!("cargo::rerun-if-env-changed=LEADGRAPH_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(leadgraph_no_postgres)");
    let configured = std::env::var("LEADGRAPH_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty());
    if !configured {
        println!("cargo::rustc-cfg=leadgraph_no_postgres");
    }
}
