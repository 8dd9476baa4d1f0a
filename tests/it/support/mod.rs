//! What the integration tests share, one way each: the environment (`env`), store backends
//! (`backend`), a world of tgsim + deposit accounts + store + giftd's configuration (`world`),
//! giftd's `Daemon` in this process (`daemon`), the `giftd run` binary as a process (`process`)
//! and several of them on one database (`cluster`), the companion bot as its players reach it
//! (`bot`), the health port (`http`), a cuttable TCP proxy (`proxy`) and awaiting a condition
//! with a deadline (`wait`).

pub mod backend;
pub mod bot;
pub mod cluster;
pub mod daemon;
pub mod env;
pub mod http;
pub mod process;
pub mod proxy;
pub mod wait;
pub mod world;

pub(crate) use backend::*;
pub(crate) use bot::*;
pub(crate) use cluster::*;
pub(crate) use daemon::*;
pub(crate) use env::*;
pub(crate) use http::*;
pub(crate) use process::*;
pub(crate) use proxy::*;
pub(crate) use wait::*;
pub(crate) use world::*;

/// Runs each named `async fn name(backend: Backend)` of the calling module once per store, as
/// the tests `sqlite::name` and `supabase::name` (the caller imports `Backend`).
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::sqlite()).await
                }
            )*
        }
        mod supabase {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::supabase()).await
                }
            )*
        }
    };
}

/// Runs `async fn run(backend: Backend)` of the calling module once per store, as the tests
/// `embedded` (SQLite) and `supabase` (PostgreSQL behind PostgREST) named by the caller (the
/// caller imports `Backend`), on two worker threads, or on one with `current_thread:` first.
macro_rules! on_both_stores {
    ($run:ident => $embedded:ident, $supabase:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $embedded() {
            $run(Backend::sqlite()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $supabase() {
            $run(Backend::supabase()).await;
        }
    };
    (current_thread: $run:ident => $embedded:ident, $supabase:ident) => {
        #[tokio::test]
        async fn $embedded() {
            $run(Backend::sqlite()).await;
        }

        #[tokio::test]
        async fn $supabase() {
            $run(Backend::supabase()).await;
        }
    };
}
