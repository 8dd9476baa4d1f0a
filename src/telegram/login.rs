//! `giftd login`: signing the deposit account in and writing its session file.
//!
//! The work happens on a private copy of the session (`<file>.login`), renamed over the real file
//! only once Telegram has accepted the sign-in, so a wrong code, a wrong password or an
//! interrupted login never leaves a half-written session behind. The file is created with mode
//! 0600: it holds the account's auth key.
//!
//! The code and password come from a [`Prompt`], so the same flow serves a terminal and flags or
//! environment variables. Without a terminal the code cannot be known before Telegram sends it,
//! so a login given no code stops after sending one ([`LoginError::CodeSent`]) and leaves the
//! work copy and the step it reached (`<file>.login-pending`) behind; the next login for the same
//! phone goes on from there with the code it is given, instead of asking for a new code (which
//! would make the one the person has worthless). A login that reaches the 2FA password without
//! one stops the same way ([`LoginError::PasswordNeeded`]): its code is spent, so the next login
//! only needs the password.

use std::path::{Path, PathBuf};

use grammers_client::client::PasswordToken;
use grammers_client::session::storages::SqliteSession;
use grammers_client::{Client, InvocationError, SignInError, tl};

use crate::secret::Secret;

/// Where the answers to the login questions come from.
pub trait Prompt {
    /// The code Telegram sent; `attempt` counts from 1.
    fn code(&mut self, attempt: u32) -> Result<Secret, LoginError>;
    /// The 2FA password, with Telegram's hint when there is one.
    fn password(&mut self, hint: Option<&str>, attempt: u32) -> Result<Secret, LoginError>;
}

#[derive(Debug, Clone)]
pub struct LoginOptions {
    pub session_file: PathBuf,
    pub api_id: i32,
    pub api_hash: Secret,
    pub phone: String,
    /// How many wrong codes or passwords to accept before giving up.
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "the phone number {phone} is not valid for Telegram: check it and include the country code, e.g. +44..."
    )]
    PhoneInvalid { phone: String },
    #[error(
        "the login code was wrong{}: run `giftd login` again to get a new code",
        times(*attempts)
    )]
    CodeInvalid { attempts: u32 },
    #[error("the login code expired: run `giftd login` again to get a new one")]
    CodeExpired,
    #[error(
        "the 2FA password was wrong{}: check it and run `giftd login` again",
        times(*attempts)
    )]
    PasswordInvalid { attempts: u32 },
    #[error(
        "telegram asks to wait {} before trying to log in again (FLOOD_WAIT): try again after that",
        how_long(*seconds)
    )]
    FloodWait { seconds: u32 },
    #[error("this phone number has no Telegram account: sign up with an official app first")]
    SignUpRequired,
    #[error(
        "the api_id / api_hash pair was refused ({name}): check [telegram] api_id and api_hash (from my.telegram.org)"
    )]
    ApiIdInvalid { name: String },
    #[error("telegram sent a login code to {phone} but none was given: {hint}")]
    CodeSent { phone: String, hint: &'static str },
    #[error(
        "the account has a 2FA password{} but none was given: {hint}",
        password_hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default()
    )]
    PasswordNeeded {
        password_hint: Option<String>,
        hint: &'static str,
    },
    #[error("no answer given for {what}: {hint}")]
    NoInput {
        what: &'static str,
        hint: &'static str,
    },
    #[error("session file {path}: {detail}")]
    Session { path: PathBuf, detail: String },
    #[error("telegram refused {step}: {name} (code {code})")]
    Rpc {
        step: &'static str,
        code: i32,
        name: String,
    },
    #[error("could not reach telegram during {step}: {detail}")]
    Network { step: &'static str, detail: String },
}

/// " 3 times" after "was wrong", nothing for a single attempt.
fn times(attempts: u32) -> String {
    if attempts > 1 {
        format!(" {attempts} times")
    } else {
        String::new()
    }
}

/// `30 s`, `5400 s (1 h 30 min)`: login flood waits run to hours, which nobody reads in seconds.
fn how_long(seconds: u32) -> String {
    let (h, min) = (seconds / 3600, seconds % 3600 / 60);
    match (h, min) {
        _ if seconds < 60 => format!("{seconds} s"),
        (0, min) => format!("{seconds} s ({min} min)"),
        (h, 0) => format!("{seconds} s ({h} h)"),
        (h, min) => format!("{seconds} s ({h} h {min} min)"),
    }
}

impl LoginError {
    fn from_invocation(step: &'static str, err: InvocationError) -> Self {
        match err {
            InvocationError::Rpc(rpc) if rpc.code == 420 => LoginError::FloodWait {
                seconds: rpc.value.unwrap_or(0),
            },
            InvocationError::Rpc(rpc) if rpc.name.starts_with("API_ID_") => {
                LoginError::ApiIdInvalid { name: rpc.name }
            }
            InvocationError::Rpc(rpc) => LoginError::Rpc {
                step,
                code: rpc.code,
                name: rpc.name,
            },
            other => LoginError::Network {
                step,
                detail: other.to_string(),
            },
        }
    }
}

/// What a successful login tells.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub user_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
}

fn session_err(path: &Path, detail: impl Into<String>) -> LoginError {
    LoginError::Session {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

/// `path` with `suffix` added to its file name: `deposit.session` -> `deposit.session.login`.
/// (Replacing the extension would make the work copy of a session called `x.login` the
/// session file itself.)
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

/// Creates `path` empty with mode 0600, or copies `from` there with mode 0600.
fn private_copy(from: &Path, to: &Path) -> Result<(), LoginError> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(to);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| session_err(to, format!("cannot be created: {e}")))?;
    if from.exists() {
        let mut input = std::fs::File::open(from)
            .map_err(|e| session_err(from, format!("cannot be read: {e}")))?;
        std::io::copy(&mut input, &mut out)
            .map_err(|e| session_err(to, format!("cannot be written: {e}")))?;
    }
    Ok(())
}

/// How far a login on the work copy's key got.
#[derive(Debug, Clone)]
enum Step {
    /// A code was sent; Telegram's hash of the request.
    Code { phone_code_hash: String },
    /// The code was accepted and the account's 2FA password is needed.
    Password,
}

/// A login that stopped for want of a code or a password, for the next login to go on with.
struct Pending {
    phone: String,
    step: Step,
}

impl Pending {
    fn read(path: &Path) -> Option<Pending> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let phone = lines.next()?.to_owned();
        let step = match lines.next()? {
            "password" => Step::Password,
            line => Step::Code {
                phone_code_hash: line.strip_prefix("code ")?.to_owned(),
            },
        };
        Some(Pending { phone, step })
    }

    fn write(&self, path: &Path) -> Result<(), LoginError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| match &self.step {
                Step::Code { phone_code_hash } => {
                    writeln!(f, "{}\ncode {phone_code_hash}", self.phone)
                }
                Step::Password => writeln!(f, "{}\npassword", self.phone),
            })
            .map_err(|e| session_err(path, format!("cannot be written: {e}")))
    }
}

/// Signs the account in. An existing session file (for instance one that only holds a data
/// centre address and a key, as `tgsim provision` writes) is used as the starting point, and a
/// login for the same phone that stopped for want of a code or a password is gone on with.
pub async fn login(opts: &LoginOptions, prompt: &mut dyn Prompt) -> Result<LoggedIn, LoginError> {
    let work = beside(&opts.session_file, ".login");
    let pending_file = beside(&opts.session_file, ".login-pending");
    let pending = Pending::read(&pending_file).filter(|p| p.phone == opts.phone && work.exists());
    // Read once: written again only when this login too ends without a code.
    let _ = std::fs::remove_file(&pending_file);
    if pending.is_none() {
        private_copy(&opts.session_file, &work)?;
    }
    let mut step = pending.map(|p| p.step);
    let result = login_into(&work, opts, prompt, &mut step).await;
    match (result, step) {
        (Ok(user), _) => {
            std::fs::rename(&work, &opts.session_file)
                .map_err(|e| session_err(&opts.session_file, format!("cannot be replaced: {e}")))?;
            Ok(user)
        }
        (
            Err(e @ (LoginError::CodeSent { .. } | LoginError::PasswordNeeded { .. })),
            Some(step),
        ) => {
            let pending = Pending {
                phone: opts.phone.clone(),
                step,
            };
            if let Err(write) = pending.write(&pending_file) {
                let _ = std::fs::remove_file(&work);
                return Err(write);
            }
            Err(e)
        }
        (Err(e), _) => {
            let _ = std::fs::remove_file(&work);
            Err(e)
        }
    }
}

/// Signs in on the session at `work`, going on from `step` (how far an earlier login on this
/// session got), which is kept up to date.
async fn login_into(
    work: &Path,
    opts: &LoginOptions,
    prompt: &mut dyn Prompt,
    step: &mut Option<Step>,
) -> Result<LoggedIn, LoginError> {
    let session = SqliteSession::open(work)
        .await
        .map_err(|e| session_err(work, format!("cannot be opened: {e}")))?;
    let (client, pool, runner, _updates) =
        super::start_pool(std::sync::Arc::new(session), opts.api_id, 16);
    let result = sign_in(&client, opts, prompt, step).await;
    pool.quit();
    let _ = runner.await;
    result
}

async fn sign_in(
    client: &Client,
    opts: &LoginOptions,
    prompt: &mut dyn Prompt,
    step: &mut Option<Step>,
) -> Result<LoggedIn, LoginError> {
    let hash = match step {
        Some(Step::Password) => return enter_password(client, opts, prompt).await,
        Some(Step::Code { phone_code_hash }) => phone_code_hash.clone(),
        None => match send_code(client, opts).await? {
            Sent::Code(hash) => {
                *step = Some(Step::Code {
                    phone_code_hash: hash.clone(),
                });
                hash
            }
            Sent::SignedIn(user) => return Ok(user),
        },
    };

    let mut attempt = 0;
    loop {
        attempt += 1;
        let code = match prompt.code(attempt) {
            Ok(code) => code,
            Err(LoginError::NoInput { hint, .. }) => {
                return Err(LoginError::CodeSent {
                    phone: opts.phone.clone(),
                    hint,
                });
            }
            Err(e) => return Err(e),
        };
        let answer = client
            .invoke(&tl::functions::auth::SignIn {
                phone_number: opts.phone.clone(),
                phone_code_hash: hash.clone(),
                phone_code: Some(code.expose().trim().to_owned()),
                email_verification: None,
            })
            .await;
        match answer {
            Ok(auth) => return logged_in(auth),
            Err(e) if e.is("PHONE_CODE_EXPIRED") => return Err(LoginError::CodeExpired),
            Err(e) if e.is("PHONE_CODE_INVALID") || e.is("PHONE_CODE_EMPTY") => {
                if attempt >= opts.attempts {
                    return Err(LoginError::CodeInvalid { attempts: attempt });
                }
                tracing::warn!(attempt, "the login code was wrong; try again");
            }
            Err(e) if e.is("SESSION_PASSWORD_NEEDED") => {
                *step = Some(Step::Password);
                return enter_password(client, opts, prompt).await;
            }
            Err(e) => return Err(LoginError::from_invocation("auth.signIn", e)),
        }
    }
}

/// The 2FA step, once Telegram has accepted the code.
async fn enter_password(
    client: &Client,
    opts: &LoginOptions,
    prompt: &mut dyn Prompt,
) -> Result<LoggedIn, LoginError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let info = client
            .invoke(&tl::functions::account::GetPassword {})
            .await
            .map_err(|e| LoginError::from_invocation("account.getPassword", e))?;
        let tl::enums::account::Password::Password(info) = info;
        let hint = info.hint.clone();
        let password = match prompt.password(hint.as_deref(), attempt) {
            Ok(password) => password,
            Err(LoginError::NoInput { hint: how, .. }) => {
                return Err(LoginError::PasswordNeeded {
                    password_hint: hint,
                    hint: how,
                });
            }
            Err(e) => return Err(e),
        };
        match client
            .check_password(PasswordToken::new(info), password.expose().as_bytes())
            .await
        {
            Ok(user) => {
                return Ok(LoggedIn {
                    user_id: user.id().bare_id_unchecked(),
                    username: user.username().map(str::to_owned),
                    first_name: user.first_name().map(str::to_owned),
                });
            }
            Err(SignInError::InvalidPassword(_)) => {
                if attempt >= opts.attempts {
                    return Err(LoginError::PasswordInvalid { attempts: attempt });
                }
                tracing::warn!(attempt, "the 2FA password was wrong; try again");
            }
            Err(SignInError::Other(e)) => {
                return Err(LoginError::from_invocation("auth.checkPassword", e));
            }
            Err(SignInError::SignUpRequired) => return Err(LoginError::SignUpRequired),
            Err(SignInError::InvalidCode | SignInError::PasswordRequired(_)) => {
                return Err(LoginError::Rpc {
                    step: "auth.checkPassword",
                    code: 0,
                    name: "unexpected sign-in state".into(),
                });
            }
        }
    }
}

/// What `auth.sendCode` answered.
enum Sent {
    /// A code was sent; the hash of the request.
    Code(String),
    /// The key was signed in already.
    SignedIn(LoggedIn),
}

async fn send_code(client: &Client, opts: &LoginOptions) -> Result<Sent, LoginError> {
    let sent = client
        .invoke(&tl::functions::auth::SendCode {
            phone_number: opts.phone.clone(),
            api_id: opts.api_id,
            api_hash: opts.api_hash.expose().to_owned(),
            settings: tl::types::CodeSettings {
                allow_flashcall: false,
                current_number: false,
                allow_app_hash: false,
                allow_missed_call: false,
                allow_firebase: false,
                logout_tokens: None,
                token: None,
                app_sandbox: None,
                unknown_number: false,
            }
            .into(),
        })
        .await;
    match sent {
        Ok(tl::enums::auth::SentCode::Code(c)) => Ok(Sent::Code(c.phone_code_hash)),
        Ok(tl::enums::auth::SentCode::Success(s)) => logged_in(s.authorization).map(Sent::SignedIn),
        Ok(other) => Err(LoginError::Rpc {
            step: "auth.sendCode",
            code: 0,
            name: format!("unsupported answer {other:?}"),
        }),
        Err(e) if e.is("PHONE_NUMBER_INVALID") => Err(LoginError::PhoneInvalid {
            phone: opts.phone.clone(),
        }),
        Err(e) if super::is_unknown_auth_key(&e) => {
            Err(session_err(&opts.session_file, super::UNKNOWN_KEY))
        }
        Err(e) => Err(LoginError::from_invocation("auth.sendCode", e)),
    }
}

fn logged_in(auth: tl::enums::auth::Authorization) -> Result<LoggedIn, LoginError> {
    Ok(match auth {
        tl::enums::auth::Authorization::Authorization(a) => match a.user {
            tl::enums::User::User(u) => LoggedIn {
                user_id: u.id,
                username: u.username,
                first_name: u.first_name,
            },
            tl::enums::User::Empty(u) => LoggedIn {
                user_id: u.id,
                username: None,
                first_name: None,
            },
        },
        tl::enums::auth::Authorization::SignUpRequired(_) => {
            return Err(LoginError::SignUpRequired);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_waits_read_in_hours_and_minutes() {
        for (seconds, want) in [
            (0, "0 s"),
            (59, "59 s"),
            (60, "60 s (1 min)"),
            (3599, "3599 s (59 min)"),
            (3600, "3600 s (1 h)"),
            (5400, "5400 s (1 h 30 min)"),
            (86_399, "86399 s (23 h 59 min)"),
        ] {
            assert_eq!(how_long(seconds), want, "{seconds}");
        }
    }

    #[test]
    fn wrong_answers_counted_only_when_more_than_one() {
        assert_eq!(
            LoginError::CodeInvalid { attempts: 1 }.to_string(),
            "the login code was wrong: run `giftd login` again to get a new code"
        );
        assert_eq!(
            LoginError::PasswordInvalid { attempts: 3 }.to_string(),
            "the 2FA password was wrong 3 times: check it and run `giftd login` again"
        );
    }
}
