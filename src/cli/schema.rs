//! `giftd schema`: the SQL of the store's migrations (the files of supabase/migrations embedded in
//! the binary), in the order they apply, to prepare a Supabase or PostgreSQL database by hand.

use std::io::Write;
use std::process::ExitCode;

use crate::store;

/// `giftd schema`: the migrations' SQL, in order, each under a comment naming its file.
pub(super) fn run(out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    for (name, sql) in store::migrations() {
        writeln!(out, "-- supabase/migrations/{name}")?;
        out.write_all(sql.as_bytes())?;
        if !sql.ends_with('\n') {
            writeln!(out)?;
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_cli;
    use crate::store;

    #[tokio::test]
    async fn schema_prints_every_migration_in_order() {
        let (ok, out) = run_cli(None, &[], &["schema"]).await;
        assert!(ok);
        let mut at = 0;
        for (name, sql) in store::migrations() {
            let header = format!("-- supabase/migrations/{name}\n");
            let found = out[at..].find(&header).map(|i| i + at);
            let Some(start) = found else {
                panic!("{header} missing or out of order");
            };
            assert!(out[start + header.len()..].starts_with(*sql));
            at = start + header.len();
        }
    }
}
