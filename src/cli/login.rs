//! `giftd login`: signs a deposit account in and writes its session file, asking for the login
//! code and the 2FA password on the terminal or taking them from the environment
//! (`GIFTD_LOGIN_CODE`, `GIFTD_LOGIN_PASSWORD`), never from the command line.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Env, config_advice};
use crate::config::Config;

/// Answers from flags first, then the terminal.
struct TerminalPrompt {
    code: Option<String>,
    password: Option<String>,
    interactive: bool,
}

impl crate::telegram::login::Prompt for TerminalPrompt {
    fn code(
        &mut self,
        attempt: u32,
    ) -> Result<crate::secret::Secret, crate::telegram::login::LoginError> {
        if attempt == 1
            && let Some(code) = self.code.take()
        {
            return Ok(crate::secret::Secret::new(code));
        }
        if !self.interactive {
            return Err(crate::telegram::login::LoginError::NoInput {
                what: "the login code",
                hint: "give it to the next `giftd login` in GIFTD_LOGIN_CODE, or run giftd \
                       login on a terminal",
            });
        }
        eprint!("login code Telegram sent: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|_| {
            crate::telegram::login::LoginError::NoInput {
                what: "the login code",
                hint: "standard input could not be read",
            }
        })?;
        Ok(crate::secret::Secret::new(line.trim()))
    }

    fn password(
        &mut self,
        hint: Option<&str>,
        attempt: u32,
    ) -> Result<crate::secret::Secret, crate::telegram::login::LoginError> {
        if attempt == 1
            && let Some(password) = self.password.take()
        {
            return Ok(crate::secret::Secret::new(password));
        }
        if !self.interactive {
            return Err(crate::telegram::login::LoginError::NoInput {
                what: "the 2FA password",
                hint: "give it to the next `giftd login` in GIFTD_LOGIN_PASSWORD, or run giftd \
                       login on a terminal",
            });
        }
        let prompt = match hint {
            Some(h) => format!("2FA password (hint: {h}): "),
            None => "2FA password: ".to_owned(),
        };
        rpassword::prompt_password(prompt)
            .map(crate::secret::Secret::new)
            .map_err(|_| crate::telegram::login::LoginError::NoInput {
                what: "the 2FA password",
                hint: "the terminal could not be read",
            })
    }
}

/// `giftd login`.
pub(super) async fn run(
    path: &Path,
    env: Env<'_>,
    account: Option<String>,
    phone: Option<String>,
    code: Option<String>,
    password: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let config = Config::load(path, env.lookup).map_err(|e| anyhow::anyhow!(config_advice(&e)))?;
    let account = config
        .account(account.as_deref())
        .map_err(anyhow::Error::msg)?;
    let interactive = std::io::stdin().is_terminal();
    let phone = match phone {
        Some(p) => p,
        None if interactive => {
            eprint!("phone number of the deposit account (+44...): ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_owned()
        }
        None => anyhow::bail!("no phone number: pass --phone (or GIFTD_LOGIN_PHONE)"),
    };
    let opts = crate::telegram::login::LoginOptions {
        session_file: account.session_file.clone(),
        api_id: config.telegram.api_id,
        api_hash: config.telegram.api_hash.clone(),
        phone,
        attempts: if interactive { 3 } else { 1 },
    };
    let mut prompt = TerminalPrompt {
        code,
        password,
        interactive,
    };
    let user = crate::telegram::login::login(&opts, &mut prompt)
        .await
        .context("login failed")?;
    writeln!(
        out,
        "signed in as {}{} (user id {}); session written to {}",
        user.first_name.as_deref().unwrap_or(""),
        user.username
            .as_deref()
            .map(|u| format!(" @{u}"))
            .unwrap_or_default(),
        user.user_id,
        opts.session_file.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{EMBEDDED, run_cli};

    #[tokio::test]
    async fn login_needs_an_account_name_when_several_are_configured() {
        let config = format!("{EMBEDDED}[account.main]\n[account.spare]\n");
        let (ok, out) = run_cli(Some(&config), &[], &["login", "--phone", "+1"]).await;
        assert!(!ok, "{out}");
        assert_eq!(
            out,
            "error: several deposit accounts are configured (main, spare): choose one with \
             --account NAME"
        );
        let (ok, out) = run_cli(
            Some(&config),
            &[],
            &["login", "--account", "spar", "--phone", "+1"],
        )
        .await;
        assert!(!ok, "{out}");
        assert_eq!(
            out,
            "error: no deposit account \"spar\" in <tmp>/config.toml: the configured ones are \
             main, spare"
        );
    }
}
