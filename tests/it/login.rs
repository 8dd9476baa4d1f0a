//! `giftd login` and the session file, against tgsim with the real grammers client: the sign-in
//! flows (code, 2FA; in process, through the binary without a terminal and on a pseudo-terminal),
//! every failure a person can meet (wrong code, expired code, wrong password, FLOOD_WAIT,
//! invalid phone) with the message they read, the rule that the session file is written only on
//! success, and what `giftd run` says about a session it cannot use (readable by others,
//! missing, never signed in, a key Telegram does not know, signed out while running). Needs no
//! database: the daemon cases use the embedded store; the terminal case needs `script`.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use giftd::app::{AppError, Daemon};
use giftd::config::Config;
use giftd::secret::Secret;
use giftd::telegram::login::{self, LoggedIn, LoginError, LoginOptions, Prompt};
use giftd::telegram::{ConnectOptions, Telegram, TelegramError};
use tgsim::{Account, CreateUser, Fault, SessionFor, Sim, Ttls};
use tokio_util::sync::CancellationToken;

use crate::support::Running;

const PHONE: &str = "+15550123";

/// A simulator holding the deposit account (phone [`PHONE`]) and a directory for its session.
struct Setup {
    sim: Sim,
    account: Account,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(password: Option<&str>, ttls: Ttls) -> Setup {
        crate::support::init_tracing();
        let sim = crate::support::start_sim(ttls).await;
        let account = sim
            .create_user(CreateUser {
                username: "deposit".into(),
                first_name: "Depot".into(),
                phone: PHONE.into(),
                password: password.map(str::to_owned),
                ..Default::default()
            })
            .expect("account created");
        Setup {
            sim,
            account,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn session_file(&self) -> PathBuf {
        self.dir.path().join("deposit.session")
    }

    /// Writes a session holding the simulator's address and a key that is not signed in, as
    /// `tgsim provision` leaves it before `giftd login`. Returns its bytes.
    async fn write_unsigned_session(&self) -> Vec<u8> {
        self.write_unsigned_session_at(&self.session_file()).await
    }

    async fn write_unsigned_session_at(&self, path: &Path) -> Vec<u8> {
        let key = self.sim.new_auth_key(None);
        self.sim
            .write_session(SessionFor::Key(Box::new(key)), path)
            .await
            .expect("session written");
        std::fs::read(path).unwrap()
    }

    fn options(&self) -> LoginOptions {
        self.options_for(self.session_file())
    }

    fn options_for(&self, session_file: PathBuf) -> LoginOptions {
        LoginOptions {
            session_file,
            api_id: 1,
            api_hash: Secret::new("test-hash"),
            phone: PHONE.into(),
            attempts: 1,
        }
    }

    fn code(&self) -> String {
        self.sim.login_code(PHONE).expect("tgsim sent a code")
    }

    fn prompt(&self, codes: &[Code], passwords: &[&str]) -> Scripted {
        Scripted {
            sim: self.sim.clone(),
            codes: codes.iter().copied().collect(),
            passwords: passwords.iter().map(|p| (*p).to_owned()).collect(),
            hints: Vec::new(),
            advance_clock: None,
        }
    }

    /// The configuration `giftd run` and `giftd login` read: the embedded store in the
    /// temporary directory, the health endpoint on a free port.
    fn config_text(&self) -> String {
        format!(
            "[telegram]\napi_id = 1\napi_hash = \"test-hash\"\nsession_file = \"{}\"\n\
             poll_interval = \"1s\"\n[store]\nstate_dir = \"{}\"\n[health]\nlisten = \"127.0.0.1:0\"\n",
            self.session_file().display(),
            self.dir.path().display(),
        )
    }

    fn config(&self) -> Config {
        Config::parse_str(&self.config_text(), "test config", &|_| None).expect("valid config")
    }

    /// Runs the `giftd` binary with the configuration written to a file, an empty environment
    /// and no terminal on stdin. Returns (success, stdout, stderr).
    async fn giftd(&self, args: &[&str]) -> (bool, String, String) {
        self.giftd_with_env(args, &[]).await
    }

    /// [`Setup::giftd`] with only `env` in the environment. The process is waited for off the
    /// test's runtime, which also runs the simulator.
    async fn giftd_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let config = self.dir.path().join("giftd.toml");
        std::fs::write(&config, self.config_text()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftd"));
        cmd.env_clear()
            .envs(env.iter().copied())
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("giftd runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Connects with the session file as `giftd run` does and returns the account it is signed
    /// in as.
    async fn connect(&self) -> Result<i64, TelegramError> {
        let opts = ConnectOptions {
            session_file: self.session_file(),
            api_id: 1,
            api_hash: Secret::new("test-hash"),
            flood_wait_max: Duration::from_secs(60),
            updates: false,
            update_buffer: 16,
            health: std::sync::Arc::new(giftd::health::Health::new()),
        };
        let conn = Telegram::connect(&opts, CancellationToken::new()).await?;
        let id = conn.telegram.self_id();
        conn.telegram.disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.runner).await;
        Ok(id)
    }

    /// Starts the daemon with [`Setup::config`] and waits until it reports ready. Returns its
    /// shutdown token and its task.
    async fn start_daemon(
        &self,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<Result<(), AppError>>,
    ) {
        let running = Running::launch(self.config())
            .ready(Duration::from_secs(30))
            .await;
        (running.shutdown, running.join)
    }

    /// The files in the session's directory, to show that a failed login leaves nothing.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "giftd.toml")
            .collect();
        names.sort();
        names
    }
}

/// What the scripted prompt answers when asked for the code.
#[derive(Debug, Clone, Copy)]
enum Code {
    /// The code tgsim sent.
    Right,
    /// Another code.
    Wrong,
}

/// A [`Prompt`] answering from a script, recording the 2FA hints it was shown.
struct Scripted {
    sim: Sim,
    codes: VecDeque<Code>,
    passwords: VecDeque<String>,
    hints: Vec<Option<String>>,
    /// Moves tgsim's clock forward this many seconds before answering the code, so the code
    /// is older than its lifetime without a real wait.
    advance_clock: Option<i64>,
}

impl Prompt for Scripted {
    fn code(&mut self, _attempt: u32) -> Result<Secret, LoginError> {
        let right = self.sim.login_code(PHONE).expect("tgsim sent a code");
        if let Some(secs) = self.advance_clock.take() {
            self.sim.inject(Fault::ClockSkew { secs });
        }
        match self.codes.pop_front() {
            Some(Code::Right) => Ok(Secret::new(right)),
            Some(Code::Wrong) => Ok(Secret::new(if right == "00000" {
                "11111"
            } else {
                "00000"
            })),
            None => Err(LoginError::NoInput {
                what: "the login code",
                hint: "the script has no more codes",
            }),
        }
    }

    fn password(&mut self, hint: Option<&str>, _attempt: u32) -> Result<Secret, LoginError> {
        self.hints.push(hint.map(str::to_owned));
        match self.passwords.pop_front() {
            Some(p) => Ok(Secret::new(p)),
            None => Err(LoginError::NoInput {
                what: "the 2FA password",
                hint: "the script has no more passwords",
            }),
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[track_caller]
fn assert_signed_in_as(user: &LoggedIn, account: &Account) {
    assert_eq!(user.user_id, account.id);
    assert_eq!(user.username.as_deref(), Some("deposit"));
    assert_eq!(user.first_name.as_deref(), Some("Depot"));
}

#[tokio::test]
async fn login_with_code_writes_a_private_session_the_daemon_signs_in_with() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    // An unsigned session is refused by the daemon, whatever its mode.
    std::fs::set_permissions(s.session_file(), std::fs::Permissions::from_mode(0o644)).unwrap();

    let mut prompt = s.prompt(&[Code::Right], &[]);
    let user = login::login(&s.options(), &mut prompt)
        .await
        .expect("login succeeds");
    assert_signed_in_as(&user, &s.account);
    assert!(prompt.hints.is_empty(), "no password was asked for");

    let session = s.session_file();
    assert_eq!(mode(&session), 0o600, "the session holds the auth key");
    // The existing session was the starting point: the same simulator address, the same key,
    // now signed in (the simulator negotiates no new keys, so a fresh session could not
    // have signed in at all).
    assert_ne!(std::fs::read(&session).unwrap(), before);
    assert_eq!(s.files(), ["deposit.session"], "no work file left behind");
    assert_eq!(s.sim.stats().unknown_auth_key, 0);

    assert_eq!(s.connect().await.expect("session signed in"), s.account.id);

    // And the daemon itself starts with it, as the deposit account: the gift waiting there is
    // credited to its sender.
    let player = s
        .sim
        .create_user(CreateUser {
            username: "player".into(),
            ..Default::default()
        })
        .expect("player created");
    let sent = s
        .sim
        .send_gift(tgsim::SendGift {
            from: player.id,
            to: s.account.id,
            gift_id: s.sim.gift_catalogue()[0].id,
            hide_name: false,
            message: None,
        })
        .expect("gift sent");
    let (shutdown, run) = s.start_daemon().await;
    shutdown.cancel();
    run.await.expect("daemon task").expect("clean exit");
    let store = giftd::store::open(&s.config().store)
        .await
        .expect("store opens");
    let items = store
        .load_items(s.account.id)
        .await
        .expect("store readable");
    assert_eq!(
        items
            .iter()
            .map(|i| (i.key.account_id, i.key.msg_id, i.owner.user_id()))
            .collect::<Vec<_>>(),
        [(s.account.id, sent.msg_id, Some(player.id))]
    );
}

/// Asserts that a failed login left the session file as it was and no work file behind.
#[track_caller]
fn assert_untouched(s: &Setup, before: &[u8]) {
    assert_eq!(
        std::fs::read(s.session_file()).unwrap(),
        before,
        "the session file changed"
    );
    assert_eq!(s.files(), ["deposit.session"], "work files left behind");
}

#[tokio::test]
async fn wrong_code_is_refused_and_the_session_is_untouched() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    let mut prompt = s.prompt(&[Code::Wrong], &[]);
    let err = login::login(&s.options(), &mut prompt)
        .await
        .expect_err("a wrong code fails");
    assert!(
        matches!(err, LoginError::CodeInvalid { attempts: 1 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the login code was wrong: run `giftd login` again to get a new code"
    );
    assert_untouched(&s, &before);
    assert!(matches!(
        s.connect().await,
        Err(TelegramError::NotAuthorised { .. })
    ));
}

#[tokio::test]
async fn wrong_codes_up_to_the_attempts_allowed() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    let opts = LoginOptions {
        attempts: 2,
        ..s.options()
    };
    let err = login::login(&opts, &mut s.prompt(&[Code::Wrong, Code::Wrong], &[]))
        .await
        .expect_err("two wrong codes fail");
    assert!(
        matches!(err, LoginError::CodeInvalid { attempts: 2 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the login code was wrong 2 times: run `giftd login` again to get a new code"
    );
    assert_untouched(&s, &before);

    // A new simulator: `Sim::login_code` tells the newest code by the second it was sent.
    let s = Setup::new(None, Ttls::default()).await;
    s.write_unsigned_session().await;
    let opts = LoginOptions {
        attempts: 2,
        ..s.options()
    };
    let user = login::login(&opts, &mut s.prompt(&[Code::Wrong, Code::Right], &[]))
        .await
        .expect("the right code on the second attempt signs in");
    assert_signed_in_as(&user, &s.account);
    assert_eq!(s.connect().await.expect("signed in"), s.account.id);
}

#[tokio::test]
async fn expired_code_says_to_log_in_again() {
    let s = Setup::new(
        None,
        Ttls {
            login_code: Duration::from_secs(60),
            ..Ttls::default()
        },
    )
    .await;
    let before = s.write_unsigned_session().await;
    let mut prompt = s.prompt(&[Code::Right], &[]);
    // The person takes two minutes to type the code.
    prompt.advance_clock = Some(120);
    let err = login::login(&s.options(), &mut prompt)
        .await
        .expect_err("an expired code fails");
    assert!(matches!(err, LoginError::CodeExpired), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the login code expired: run `giftd login` again to get a new one"
    );
    assert_untouched(&s, &before);
}

#[tokio::test]
async fn two_factor_password_signs_in_and_the_prompt_shows_the_hint() {
    let s = Setup::new(Some("correct horse"), Ttls::default()).await;
    s.write_unsigned_session().await;
    let mut prompt = s.prompt(&[Code::Right], &["correct horse"]);
    let user = login::login(&s.options(), &mut prompt)
        .await
        .expect("login with the password succeeds");
    assert_signed_in_as(&user, &s.account);
    assert_eq!(prompt.hints, [Some("tgsim".to_owned())]);
    assert_eq!(mode(&s.session_file()), 0o600);
    assert_eq!(s.files(), ["deposit.session"]);
    assert_eq!(s.connect().await.expect("signed in"), s.account.id);
}

#[tokio::test]
async fn wrong_two_factor_password_is_refused_and_the_session_is_untouched() {
    let s = Setup::new(Some("correct horse"), Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    let mut prompt = s.prompt(&[Code::Right], &["battery staple"]);
    let err = login::login(&s.options(), &mut prompt)
        .await
        .expect_err("a wrong password fails");
    assert!(
        matches!(err, LoginError::PasswordInvalid { attempts: 1 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the 2FA password was wrong: check it and run `giftd login` again"
    );
    assert_eq!(prompt.hints, [Some("tgsim".to_owned())]);
    assert_untouched(&s, &before);
    assert!(matches!(
        s.connect().await,
        Err(TelegramError::NotAuthorised { .. })
    ));
}

#[tokio::test]
async fn flood_wait_on_send_code_says_how_long_to_wait() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    s.sim.inject(Fault::FloodWait {
        method: "auth.sendCode".into(),
        seconds: 30,
        count: 1,
    });
    let mut prompt = s.prompt(&[Code::Right], &[]);
    let err = login::login(&s.options(), &mut prompt)
        .await
        .expect_err("a flood wait fails");
    assert!(
        matches!(err, LoginError::FloodWait { seconds: 30 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "telegram asks to wait 30 s before trying to log in again (FLOOD_WAIT): try again after that"
    );
    assert_eq!(prompt.codes.len(), 1, "no code was asked for");
    assert_eq!(
        s.sim.stats().calls.get("auth.sendCode").copied(),
        Some(1),
        "giftd must not retry a flood wait on its own"
    );
    assert_untouched(&s, &before);

    // Login flood waits run to hours: the message says so in hours.
    s.sim.inject(Fault::FloodWait {
        method: "auth.sendCode".into(),
        seconds: 5400,
        count: 1,
    });
    let err = login::login(&s.options(), &mut s.prompt(&[Code::Right], &[]))
        .await
        .expect_err("a flood wait fails");
    assert!(
        matches!(err, LoginError::FloodWait { seconds: 5400 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "telegram asks to wait 5400 s (1 h 30 min) before trying to log in again (FLOOD_WAIT): \
         try again after that"
    );
    assert_untouched(&s, &before);
}

#[tokio::test]
async fn invalid_phone_number_says_to_include_the_country_code() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    let opts = LoginOptions {
        phone: "+1".into(),
        ..s.options()
    };
    let err = login::login(&opts, &mut s.prompt(&[Code::Right], &[]))
        .await
        .expect_err("an invalid phone number fails");
    assert!(matches!(err, LoginError::PhoneInvalid { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the phone number +1 is not valid for Telegram: check it and include the country code, \
         e.g. +44..."
    );
    assert_untouched(&s, &before);
}

#[tokio::test]
async fn a_session_file_ending_in_dot_login_survives_a_failed_login() {
    // The work copy was `<session>` with its extension replaced by `.login`: for a session
    // file called `deposit.login` that is the session file itself, which the failed login
    // then deleted.
    let s = Setup::new(None, Ttls::default()).await;
    let session = s.dir.path().join("deposit.login");
    let before = s.write_unsigned_session_at(&session).await;
    let err = login::login(
        &s.options_for(session.clone()),
        &mut s.prompt(&[Code::Wrong], &[]),
    )
    .await
    .expect_err("a wrong code fails");
    assert!(matches!(err, LoginError::CodeInvalid { .. }), "{err:?}");
    assert_eq!(std::fs::read(&session).unwrap(), before);
    assert_eq!(s.files(), ["deposit.login"]);
}

#[tokio::test]
async fn giftd_login_without_a_terminal_takes_the_code_in_a_second_run() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = s.write_unsigned_session().await;

    // No code and no terminal: Telegram sends the code, giftd says how to pass it.
    let (ok, out, err) = s.giftd(&["login", "--phone", PHONE]).await;
    assert!(!ok, "stdout: {out}\nstderr: {err}");
    assert_eq!(
        err.lines().last(),
        Some(
            "error: login failed: telegram sent a login code to +15550123 but none was given: \
             give it to the next `giftd login` in GIFTD_LOGIN_CODE, or run giftd login on a \
             terminal"
        ),
        "stderr: {err}"
    );
    assert_eq!(out, "");
    assert_eq!(
        std::fs::read(s.session_file()).unwrap(),
        before,
        "no session written"
    );
    assert_eq!(
        s.files(),
        [
            "deposit.session",
            "deposit.session.login",
            "deposit.session.login-pending"
        ],
        "the work copy and the request wait for the code"
    );
    for file in ["deposit.session.login", "deposit.session.login-pending"] {
        assert_eq!(mode(&s.dir.path().join(file)), 0o600, "{file}");
    }

    // The second run signs in with the code sent for the first, without asking for another.
    let code = s.code();
    let (ok, out, err) = s
        .giftd_with_env(&["login", "--phone", PHONE], &[("GIFTD_LOGIN_CODE", &code)])
        .await;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert_eq!(
        out,
        format!(
            "signed in as Depot @deposit (user id {}); session written to {}\n",
            s.account.id,
            s.session_file().display()
        )
    );
    assert_eq!(s.sim.stats().calls.get("auth.sendCode").copied(), Some(1));
    assert_eq!(mode(&s.session_file()), 0o600);
    assert_eq!(s.files(), ["deposit.session"]);
    assert_eq!(s.connect().await.expect("signed in"), s.account.id);
}

#[tokio::test]
async fn giftd_login_without_a_terminal_asks_for_the_password_in_a_third_run() {
    let s = Setup::new(Some("correct horse"), Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    let (ok, _, err) = s.giftd(&["login", "--phone", PHONE]).await;
    assert!(!ok, "{err}");

    // The code is accepted; the password is missing.
    let code = s.code();
    let (ok, out, err) = s
        .giftd_with_env(
            &["login"],
            &[("GIFTD_LOGIN_PHONE", PHONE), ("GIFTD_LOGIN_CODE", &code)],
        )
        .await;
    assert!(!ok, "stdout: {out}\nstderr: {err}");
    assert_eq!(
        err.lines().last(),
        Some(
            "error: login failed: the account has a 2FA password (hint: tgsim) but none was \
             given: give it to the next `giftd login` in GIFTD_LOGIN_PASSWORD, or run giftd \
             login on a terminal"
        ),
        "stderr: {err}"
    );
    assert_eq!(
        std::fs::read(s.session_file()).unwrap(),
        before,
        "no session written"
    );

    // The spent code is not needed again: the password finishes the login.
    let (ok, out, err) = s
        .giftd_with_env(
            &["login"],
            &[
                ("GIFTD_LOGIN_PHONE", PHONE),
                ("GIFTD_LOGIN_PASSWORD", "correct horse"),
            ],
        )
        .await;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("signed in as Depot @deposit"), "{out}");
    let calls = s.sim.stats().calls;
    assert_eq!(calls.get("auth.sendCode").copied(), Some(1));
    assert_eq!(calls.get("auth.signIn").copied(), Some(1));
    assert_eq!(mode(&s.session_file()), 0o600);
    assert_eq!(s.files(), ["deposit.session"]);
    assert_eq!(s.connect().await.expect("signed in"), s.account.id);
}

#[tokio::test]
async fn giftd_login_with_a_wrong_code_fails_and_writes_no_session() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = s.write_unsigned_session().await;
    let (ok, _, err) = s.giftd(&["login", "--phone", PHONE]).await;
    assert!(!ok, "{err}");
    let wrong = if s.code() == "00000" {
        "11111"
    } else {
        "00000"
    };
    let (ok, out, err) = s
        .giftd_with_env(&["login", "--phone", PHONE], &[("GIFTD_LOGIN_CODE", wrong)])
        .await;
    assert!(!ok, "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "");
    assert_eq!(
        err.lines().last(),
        Some(
            "error: login failed: the login code was wrong: run `giftd login` again to get a new code"
        ),
        "stderr: {err}"
    );
    assert_untouched(&s, &before);
}

#[tokio::test]
async fn a_session_readable_by_others_is_refused_with_chmod_600() {
    let s = Setup::new(None, Ttls::default()).await;
    s.sim
        .write_session(s.account.id, s.session_file())
        .await
        .expect("signed-in session written");
    std::fs::set_permissions(s.session_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let want = format!(
        "session file {path}: is readable by other users (mode 644); it holds the account's \
         auth key: run `chmod 600 {path}`",
        path = s.session_file().display()
    );

    let err = Daemon::new()
        .run(&s.config(), CancellationToken::new())
        .await
        .expect_err("the daemon refuses the session");
    assert!(
        matches!(err, AppError::Telegram(TelegramError::Session { .. })),
        "{err:?}"
    );
    assert_eq!(err.to_string(), want);
    assert_eq!(s.sim.stats().connections_total, 0, "nothing was sent");

    let (ok, _, stderr) = s.giftd(&["run"]).await;
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(format!("error: giftd stopped: {want}").as_str()),
        "{stderr}"
    );

    // The advice works.
    std::fs::set_permissions(s.session_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(s.connect().await.expect("signed in"), s.account.id);
}

#[tokio::test]
async fn a_missing_session_says_run_giftd_login() {
    let s = Setup::new(None, Ttls::default()).await;
    let err = Daemon::new()
        .run(&s.config(), CancellationToken::new())
        .await
        .expect_err("the daemon needs a session");
    assert!(
        matches!(err, AppError::Telegram(TelegramError::Session { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "session file {}: does not exist: run `giftd login` to create it",
            s.session_file().display()
        )
    );
}

#[tokio::test]
async fn a_session_never_logged_in_says_run_giftd_login() {
    let s = Setup::new(None, Ttls::default()).await;
    s.write_unsigned_session().await;
    let err = Daemon::new()
        .run(&s.config(), CancellationToken::new())
        .await
        .expect_err("the daemon refuses the session");
    assert!(
        matches!(err, AppError::Telegram(TelegramError::NotAuthorised { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "session file {} is not authorised",
            s.session_file().display()
        )) && text.ends_with(": run `giftd login`"),
        "{text}"
    );
}

/// Writes a session pointing at `s`'s simulator with a key only another simulator knows, as
/// when Telegram has forgotten a key: MTProto answers with transport error -404, not an RPC
/// error.
async fn write_session_with_an_unknown_key(s: &Setup) -> Vec<u8> {
    let other = Setup::new(None, Ttls::default()).await;
    let key = other.sim.new_auth_key(Some(other.account.id));
    let spec = s
        .sim
        .session_spec(SessionFor::Key(Box::new(key)))
        .expect("session spec");
    tgsim::session_file::write(&s.session_file(), &spec)
        .await
        .expect("session written");
    std::fs::read(s.session_file()).unwrap()
}

#[tokio::test]
async fn a_session_whose_key_telegram_does_not_know_says_delete_it_and_log_in() {
    let s = Setup::new(None, Ttls::default()).await;
    write_session_with_an_unknown_key(&s).await;
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        Daemon::new().run(&s.config(), CancellationToken::new()),
    )
    .await
    .expect("the daemon gives up at once")
    .expect_err("the daemon refuses the session");
    assert!(
        matches!(err, AppError::Telegram(TelegramError::Session { .. })),
        "{err:?}"
    );
    assert!(!err.to_string().contains("could not reach"), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "session file {}: holds an auth key Telegram does not know (transport error -404): \
             delete the file and run `giftd login`",
            s.session_file().display()
        )
    );
}

#[tokio::test]
async fn login_with_a_key_telegram_does_not_know_says_delete_the_session() {
    let s = Setup::new(None, Ttls::default()).await;
    let before = write_session_with_an_unknown_key(&s).await;
    let err = login::login(&s.options(), &mut s.prompt(&[Code::Right], &[]))
        .await
        .expect_err("no login with an unknown key");
    assert!(matches!(err, LoginError::Session { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "session file {}: holds an auth key Telegram does not know (transport error -404): \
             delete the file and run `giftd login`",
            s.session_file().display()
        )
    );
    assert_untouched(&s, &before);
}

#[tokio::test]
async fn a_session_revoked_while_running_stops_the_daemon_with_run_giftd_login() {
    // Signed out from another device while giftd runs: every call answers 401.
    let s = Setup::new(None, Ttls::default()).await;
    s.sim
        .write_session(s.account.id, s.session_file())
        .await
        .expect("signed-in session written");
    let (shutdown, run) = s.start_daemon().await;
    s.sim.inject(Fault::RpcError {
        method: "payments.getSavedStarGifts".into(),
        code: 401,
        message: "AUTH_KEY_UNREGISTERED".into(),
        count: 1_000,
    });
    let stopped = tokio::time::timeout(Duration::from_secs(30), run).await;
    shutdown.cancel();
    let err = stopped
        .expect("the daemon stops by itself")
        .expect("daemon task")
        .expect_err("the daemon fails");
    assert!(
        matches!(err, AppError::Telegram(TelegramError::NotAuthorised { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "session file {} is not authorised (Telegram answered AUTH_KEY_UNREGISTERED): run \
             `giftd login`",
            s.session_file().display()
        )
    );
}

/// `giftd login` on a terminal (a pseudo-terminal from util-linux `script`): the output so
/// far, and a way to type.
struct Terminal {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Terminal {
    fn start(s: &Setup, args: &str) -> Terminal {
        let config = s.dir.path().join("giftd.toml");
        std::fs::write(&config, s.config_text()).unwrap();
        let command = format!(
            "{} --config {} {args}",
            env!("CARGO_BIN_EXE_giftd"),
            config.display()
        );
        let mut child = Command::new("script")
            .args(["-q", "-f", "-e", "-c", &command, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("`script` (util-linux) runs: it gives giftd login a terminal");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        std::thread::spawn({
            let output = output.clone();
            move || {
                use std::io::Read as _;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stdout.read(&mut buf) {
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
        Terminal {
            child,
            stdin,
            output,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).replace("\r\n", "\n")
    }

    /// Waits until `prompt` has been shown `times` times.
    async fn wait_for(&self, prompt: &str, times: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.text().matches(prompt).count() < times {
            assert!(
                std::time::Instant::now() < deadline,
                "no {prompt:?} (x{times}) on the terminal:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn type_line(&mut self, line: &str) {
        use std::io::Write as _;
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        self.stdin.flush().unwrap();
    }

    async fn exit(mut self) -> (bool, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread may still hold the last bytes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return (status.success(), self.text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "giftd login did not finish:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn giftd_login_on_a_terminal_asks_again_after_a_wrong_code_and_shows_the_hint() {
    let s = Setup::new(Some("correct horse"), Ttls::default()).await;
    s.write_unsigned_session().await;
    let mut term = Terminal::start(&s, &format!("login --phone {PHONE}"));

    term.wait_for("login code Telegram sent: ", 1).await;
    let code = s.code();
    term.type_line(if code == "00000" { "11111" } else { "00000" });
    term.wait_for("login code Telegram sent: ", 2).await;
    assert!(
        term.text().contains("the login code was wrong; try again"),
        "{}",
        term.text()
    );
    term.type_line(&code);
    term.wait_for("2FA password (hint: tgsim): ", 1).await;
    term.type_line("correct horse");

    let (ok, text) = term.exit().await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "signed in as Depot @deposit (user id {}); session written to {}",
            s.account.id,
            s.session_file().display()
        )),
        "{text}"
    );
    assert!(
        !text.contains("correct horse"),
        "the password is not echoed:\n{text}"
    );
    assert_eq!(mode(&s.session_file()), 0o600);
    assert_eq!(s.files(), ["deposit.session"]);
    assert_eq!(s.connect().await.expect("signed in"), s.account.id);
}
