//! RPC dispatch: turns one decoded request (after the MTProto layer stripped containers and
//! gzip) into a serialized result or an [`RpcErr`], against the [`World`].
//!
//! Requests are parsed with grammers-tl-types' `deserializable-functions`; results are
//! serialized through their boxed `enums::X` form. Nothing here does IO, and no client input may
//! panic: a request that does not parse answers `INPUT_REQUEST_INVALID`.

use grammers_tl_types::{self as tl, Cursor, Deserializable, Identifiable, Serializable};

use crate::tlb;
use crate::world::{CallbackAnswer, RpcErr, World};

/// Who is calling.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Auth key id of the connection.
    pub key_id: u64,
    /// Connection id (so the caller's own updates are not pushed back to it).
    pub conn: u64,
}

/// A request with its wrappers removed.
#[derive(Debug)]
pub struct Unwrapped<'a> {
    /// The inner function's bytes, constructor id first.
    pub query: &'a [u8],
    /// `invokeWithoutUpdates` was present.
    pub without_updates: bool,
}

const INVOKE_WITH_LAYER: u32 = 0xda9b0d0d;
const INIT_CONNECTION: u32 = 0xc1cd5ea9;
const INVOKE_WITHOUT_UPDATES: u32 = 0xbf9459b7;
const INVOKE_AFTER_MSG: u32 = 0xcb9f372d;
const INVOKE_AFTER_MSGS: u32 = 0x3dc4b4f0;

fn bad_input() -> RpcErr {
    RpcErr::bad("INPUT_REQUEST_INVALID")
}

/// Strips invokeWithLayer / initConnection / invokeWithoutUpdates / invokeAfterMsg(s).
pub fn unwrap(mut body: &[u8]) -> Result<Unwrapped<'_>, RpcErr> {
    let mut without_updates = false;
    for _ in 0..8 {
        if body.len() < 4 {
            return Err(bad_input());
        }
        let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let rest = &body[4..];
        let mut cur = Cursor::from_slice(rest);
        match id {
            INVOKE_WITH_LAYER => {
                i32::deserialize(&mut cur).map_err(|_| bad_input())?;
            }
            INVOKE_WITHOUT_UPDATES => without_updates = true,
            INVOKE_AFTER_MSG => {
                i64::deserialize(&mut cur).map_err(|_| bad_input())?;
            }
            INVOKE_AFTER_MSGS => {
                Vec::<i64>::deserialize(&mut cur).map_err(|_| bad_input())?;
            }
            INIT_CONNECTION => {
                let flags = u32::deserialize(&mut cur).map_err(|_| bad_input())?;
                i32::deserialize(&mut cur).map_err(|_| bad_input())?;
                for _ in 0..6 {
                    String::deserialize(&mut cur).map_err(|_| bad_input())?;
                }
                if flags & 1 != 0 {
                    tl::enums::InputClientProxy::deserialize(&mut cur).map_err(|_| bad_input())?;
                }
                if flags & 2 != 0 {
                    tl::enums::Jsonvalue::deserialize(&mut cur).map_err(|_| bad_input())?;
                }
            }
            _ => {
                return Ok(Unwrapped {
                    query: body,
                    without_updates,
                });
            }
        }
        let pos = cur.pos();
        body = &rest[pos..];
    }
    Err(bad_input())
}

/// The TL name of a function constructor, for fault matching and error messages.
pub fn method_name(query: &[u8]) -> &'static str {
    if query.len() < 4 {
        return "?";
    }
    tl::name_for_id(u32::from_le_bytes([query[0], query[1], query[2], query[3]]))
}

fn parse<T: Deserializable>(body: &[u8]) -> Result<T, RpcErr> {
    T::from_bytes(&body[4..]).map_err(|_| bad_input())
}

fn ok(v: impl Serializable) -> Result<Vec<u8>, RpcErr> {
    Ok(v.to_bytes())
}

/// Methods callable without a signed-in key.
fn allowed_unauthorised(id: u32) -> bool {
    use tl::functions as f;
    [
        f::help::GetConfig::CONSTRUCTOR_ID,
        f::help::GetNearestDc::CONSTRUCTOR_ID,
        f::auth::SendCode::CONSTRUCTOR_ID,
        f::auth::SignIn::CONSTRUCTOR_ID,
        f::auth::CheckPassword::CONSTRUCTOR_ID,
        f::account::GetPassword::CONSTRUCTOR_ID,
        f::auth::ImportBotAuthorization::CONSTRUCTOR_ID,
        f::auth::LogOut::CONSTRUCTOR_ID,
    ]
    .contains(&id)
}

fn authorization(w: &World, id: i64) -> Result<Vec<u8>, RpcErr> {
    let user = w
        .tl_user(id, id)
        .ok_or_else(|| RpcErr::bad("USER_ID_INVALID"))?;
    ok(tl::enums::auth::Authorization::Authorization(
        tl::types::auth::Authorization {
            setup_password_required: false,
            otherwise_relogin_days: None,
            tmp_sessions: None,
            future_auth_token: None,
            user,
        },
    ))
}

fn own_updates(w: &World, me: i64, upd: Vec<tl::enums::Update>) -> tl::enums::Updates {
    let users = [me].iter().filter_map(|id| w.tl_user(*id, me)).collect();
    tlb::updates(upd, users, w.now() as i32)
}

fn saved_ref(r: &tl::enums::InputSavedStarGift) -> Result<i32, RpcErr> {
    match r {
        tl::enums::InputSavedStarGift::User(u) => Ok(u.msg_id),
        _ => Err(RpcErr::bad("STARGIFT_NOT_FOUND")),
    }
}

/// Answers one request. `query` starts with the function's constructor id.
pub fn dispatch(w: &mut World, ctx: Ctx, query: &[u8]) -> Result<Vec<u8>, RpcErr> {
    use tl::functions as f;
    if query.len() < 4 {
        return Err(bad_input());
    }
    let id = u32::from_le_bytes([query[0], query[1], query[2], query[3]]);
    let name = tl::name_for_id(id);
    if let Some(err) = w.take_error_fault(name) {
        return Err(err);
    }
    let me = match w.key_account(ctx.key_id) {
        Some(me) => me,
        None if w.key_revoked(ctx.key_id) => {
            return Err(RpcErr {
                code: 401,
                message: "SESSION_REVOKED".into(),
            });
        }
        None if allowed_unauthorised(id) => 0,
        None => {
            return Err(RpcErr {
                code: 401,
                message: "AUTH_KEY_UNREGISTERED".into(),
            });
        }
    };
    match id {
        f::help::GetConfig::CONSTRUCTOR_ID => ok(tlb::config(
            w.now() as i32,
            w.dc_id,
            &w.addr.ip().to_string(),
            w.addr.port(),
        )),
        f::help::GetNearestDc::CONSTRUCTOR_ID => {
            ok(tl::enums::NearestDc::Dc(tl::types::NearestDc {
                country: "XX".into(),
                this_dc: w.dc_id,
                nearest_dc: w.dc_id,
            }))
        }
        f::updates::GetState::CONSTRUCTOR_ID => ok(w.get_state(me)?),
        f::updates::GetDifference::CONSTRUCTOR_ID => {
            let r: f::updates::GetDifference = parse(query)?;
            ok(w.get_difference(me, r.pts, r.pts_total_limit)?)
        }
        f::users::GetUsers::CONSTRUCTOR_ID => {
            let r: f::users::GetUsers = parse(query)?;
            let mut users = Vec::new();
            for u in &r.id {
                if let Ok(uid) = w.resolve_input_user(me, u)
                    && let Some(user) = w.tl_user(uid, me)
                {
                    users.push(user);
                }
            }
            ok(users)
        }
        f::users::GetFullUser::CONSTRUCTOR_ID => {
            let r: f::users::GetFullUser = parse(query)?;
            let uid = w.resolve_input_user(me, &r.id)?;
            let user = w
                .tl_user(uid, me)
                .ok_or_else(|| RpcErr::bad("USER_ID_INVALID"))?;
            ok(tl::enums::users::UserFull::Full(
                tl::types::users::UserFull {
                    full_user: tlb::user_full(uid, None),
                    chats: Vec::new(),
                    users: vec![user],
                },
            ))
        }
        f::contacts::ResolveUsername::CONSTRUCTOR_ID => {
            let r: f::contacts::ResolveUsername = parse(query)?;
            let uid = w
                .account_by_username(&r.username)
                .ok_or_else(|| RpcErr::bad("USERNAME_NOT_OCCUPIED"))?;
            let user = w
                .tl_user(uid, me)
                .ok_or_else(|| RpcErr::bad("USERNAME_NOT_OCCUPIED"))?;
            ok(tl::enums::contacts::ResolvedPeer::Peer(
                tl::types::contacts::ResolvedPeer {
                    peer: tlb::peer_user(uid),
                    chats: Vec::new(),
                    users: vec![user],
                },
            ))
        }
        f::auth::SendCode::CONSTRUCTOR_ID => {
            let r: f::auth::SendCode = parse(query)?;
            let hash = w.send_code(&r.phone_number)?;
            ok(tl::enums::auth::SentCode::Code(tl::types::auth::SentCode {
                r#type: tl::enums::auth::SentCodeType::App(tl::types::auth::SentCodeTypeApp {
                    length: 5,
                }),
                phone_code_hash: hash,
                next_type: None,
                timeout: None,
            }))
        }
        f::auth::SignIn::CONSTRUCTOR_ID => {
            let r: f::auth::SignIn = parse(query)?;
            let code = r.phone_code.unwrap_or_default();
            match w.sign_in(ctx.key_id, &r.phone_number, &r.phone_code_hash, &code)? {
                Some(id) => authorization(w, id),
                None => ok(tl::enums::auth::Authorization::SignUpRequired(
                    tl::types::auth::AuthorizationSignUpRequired {
                        terms_of_service: None,
                    },
                )),
            }
        }
        f::account::GetPassword::CONSTRUCTOR_ID => ok(w.get_password(ctx.key_id)?),
        f::auth::CheckPassword::CONSTRUCTOR_ID => {
            let r: f::auth::CheckPassword = parse(query)?;
            let tl::enums::InputCheckPasswordSrp::Srp(srp) = r.password else {
                return Err(RpcErr::bad("PASSWORD_HASH_INVALID"));
            };
            let id = w.check_password(ctx.key_id, srp.srp_id, &srp.a, &srp.m1)?;
            authorization(w, id)
        }
        f::auth::ImportBotAuthorization::CONSTRUCTOR_ID => {
            let r: f::auth::ImportBotAuthorization = parse(query)?;
            let id = w.import_bot(ctx.key_id, &r.bot_auth_token)?;
            authorization(w, id)
        }
        f::auth::LogOut::CONSTRUCTOR_ID => {
            w.log_out(ctx.key_id);
            ok(tl::enums::auth::LoggedOut::Out(
                tl::types::auth::LoggedOut {
                    future_auth_token: None,
                },
            ))
        }
        f::payments::GetSavedStarGifts::CONSTRUCTOR_ID => {
            let r: f::payments::GetSavedStarGifts = parse(query)?;
            let mut page = w.get_saved_star_gifts(me, &r)?;
            if w.take_empty_page_fault() {
                let tl::enums::payments::SavedStarGifts::Gifts(p) = &mut page;
                p.gifts.clear();
                p.next_offset = None;
            }
            ok(page)
        }
        f::payments::GetSavedStarGift::CONSTRUCTOR_ID => {
            let r: f::payments::GetSavedStarGift = parse(query)?;
            ok(w.get_saved_star_gift(me, &r.stargift)?)
        }
        f::payments::TransferStarGift::CONSTRUCTOR_ID => {
            let r: f::payments::TransferStarGift = parse(query)?;
            let msg_id = saved_ref(&r.stargift)?;
            let to = w.resolve_input_peer(me, &r.to_id)?;
            let (_, own) = w.transfer_gift(me, msg_id, to, Some(ctx.conn), false)?;
            ok(own_updates(w, me, own.into_iter().collect()))
        }
        f::payments::GetPaymentForm::CONSTRUCTOR_ID => {
            let r: f::payments::GetPaymentForm = parse(query)?;
            let (form_id, stars, label) = match r.invoice {
                tl::enums::InputInvoice::StarGiftTransfer(inv) => {
                    let msg_id = saved_ref(&inv.stargift)?;
                    let to = w.resolve_input_peer(me, &inv.to_id)?;
                    let (form_id, stars) = w.payment_form(me, msg_id, to)?;
                    (form_id, stars, "Gift transfer")
                }
                tl::enums::InputInvoice::StarGift(inv) => {
                    let to = w.resolve_input_peer(me, &inv.peer)?;
                    let message = inv
                        .message
                        .map(|tl::enums::TextWithEntities::Entities(t)| t.text);
                    let (form_id, stars) = w.gift_payment_form(
                        me,
                        to,
                        inv.gift_id,
                        inv.hide_name,
                        inv.include_upgrade,
                        message,
                    )?;
                    (form_id, stars, "Gift")
                }
                _ => return Err(RpcErr::bad("INVOICE_INVALID")),
            };
            ok(tl::enums::payments::PaymentForm::StarGift(
                tl::types::payments::PaymentFormStarGift {
                    form_id,
                    invoice: tl::enums::Invoice::Invoice(tl::types::Invoice {
                        test: false,
                        name_requested: false,
                        phone_requested: false,
                        email_requested: false,
                        shipping_address_requested: false,
                        flexible: false,
                        phone_to_provider: false,
                        email_to_provider: false,
                        recurring: false,
                        currency: "XTR".into(),
                        prices: vec![tl::enums::LabeledPrice::Price(tl::types::LabeledPrice {
                            label: label.into(),
                            amount: stars,
                        })],
                        max_tip_amount: None,
                        suggested_tip_amounts: None,
                        terms_url: None,
                        subscription_period: None,
                    }),
                },
            ))
        }
        f::payments::SendStarsForm::CONSTRUCTOR_ID => {
            let r: f::payments::SendStarsForm = parse(query)?;
            let own = w.send_stars_form(me, r.form_id, Some(ctx.conn))?;
            ok(tl::enums::payments::PaymentResult::Result(
                tl::types::payments::PaymentResult {
                    updates: own_updates(w, me, own.into_iter().collect()),
                },
            ))
        }
        f::payments::GetStarsTransactions::CONSTRUCTOR_ID => {
            let r: f::payments::GetStarsTransactions = parse(query)?;
            if w.resolve_input_peer(me, &r.peer)? != me {
                return Err(RpcErr::bad("PEER_ID_INVALID"));
            }
            ok(w.stars_transactions(me, &r)?)
        }
        f::payments::ConvertStarGift::CONSTRUCTOR_ID => {
            let r: f::payments::ConvertStarGift = parse(query)?;
            w.convert_gift(me, saved_ref(&r.stargift)?)?;
            ok(true)
        }
        f::payments::CheckCanSendGift::CONSTRUCTOR_ID => {
            let r: f::payments::CheckCanSendGift = parse(query)?;
            ok(w.check_can_send_gift(me, r.gift_id)?)
        }
        f::payments::GetStarsStatus::CONSTRUCTOR_ID => {
            let r: f::payments::GetStarsStatus = parse(query)?;
            let who = w.resolve_input_peer(me, &r.peer)?;
            if who != me {
                return Err(RpcErr::bad("PEER_ID_INVALID"));
            }
            ok(tl::enums::payments::StarsStatus::Status(
                tl::types::payments::StarsStatus {
                    // `ton`: the TON balance (starsTonAmount); tgsim accounts hold no TON.
                    balance: if r.ton {
                        tl::enums::StarsAmount::StarsTonAmount(tl::types::StarsTonAmount {
                            amount: 0,
                        })
                    } else {
                        tl::enums::StarsAmount::Amount(tl::types::StarsAmount {
                            amount: w.stars(me)?,
                            nanos: 0,
                        })
                    },
                    subscriptions: None,
                    subscriptions_next_offset: None,
                    subscriptions_missing_balance: None,
                    history: None,
                    next_offset: None,
                    chats: Vec::new(),
                    users: w.tl_user(me, me).into_iter().collect(),
                },
            ))
        }
        f::messages::SendMessage::CONSTRUCTOR_ID => {
            let r: f::messages::SendMessage = parse(query)?;
            let to = w.resolve_input_peer(me, &r.peer)?;
            w.check_bot_send(me, to)?;
            let (msg_id, _, own) =
                w.send_text(me, to, &r.message, r.reply_markup, Some(ctx.conn))?;
            let (pts, date) = match &own {
                tl::enums::Update::NewMessage(m) => (m.pts, w.now() as i32),
                _ => (0, w.now() as i32),
            };
            ok(tl::enums::Updates::UpdateShortSentMessage(
                tl::types::UpdateShortSentMessage {
                    out: true,
                    id: msg_id,
                    pts,
                    pts_count: 1,
                    date,
                    media: None,
                    entities: None,
                    ttl_period: None,
                },
            ))
        }
        f::messages::EditMessage::CONSTRUCTOR_ID => {
            let r: f::messages::EditMessage = parse(query)?;
            w.resolve_input_peer(me, &r.peer)?;
            let own = w.edit_text(
                me,
                r.id,
                r.message.as_deref(),
                r.reply_markup,
                Some(ctx.conn),
            )?;
            ok(own_updates(w, me, vec![own]))
        }
        f::messages::SetBotCallbackAnswer::CONSTRUCTOR_ID => {
            let r: f::messages::SetBotCallbackAnswer = parse(query)?;
            w.answer_callback(
                me,
                r.query_id,
                CallbackAnswer {
                    message: r.message,
                    alert: r.alert,
                },
            )?;
            ok(true)
        }
        f::bots::SetBotCommands::CONSTRUCTOR_ID => {
            let r: f::bots::SetBotCommands = parse(query)?;
            if !matches!(r.scope, tl::enums::BotCommandScope::Default) {
                return Err(RpcErr::bad("BOT_COMMAND_SCOPE_NOT_SIMULATED"));
            }
            let cmds = r
                .commands
                .into_iter()
                .map(|tl::enums::BotCommand::Command(c)| (c.command, c.description))
                .collect();
            w.set_bot_commands(me, &r.lang_code, cmds)?;
            ok(true)
        }
        f::messages::GetDialogs::CONSTRUCTOR_ID => ok(w.dialogs(me)?),
        f::messages::GetHistory::CONSTRUCTOR_ID => {
            let r: f::messages::GetHistory = parse(query)?;
            let peer = w.resolve_input_peer(me, &r.peer)?;
            ok(w.get_history(
                me,
                peer,
                r.offset_id,
                r.offset_date,
                r.add_offset,
                r.limit,
                r.max_id,
                r.min_id,
            )?)
        }
        f::payments::GetUniqueStarGift::CONSTRUCTOR_ID => {
            let r: f::payments::GetUniqueStarGift = parse(query)?;
            ok(w.unique_star_gift(me, &r.slug)?)
        }
        f::messages::GetMessages::CONSTRUCTOR_ID => {
            let r: f::messages::GetMessages = parse(query)?;
            if r.id.len() > 200 {
                return Err(RpcErr::bad("LIMIT_INVALID"));
            }
            ok(w.get_messages(me, &r.id)?)
        }
        _ if name == "(unknown)" => Err(RpcErr::bad(format!("INPUT_METHOD_INVALID_0x{id:08x}"))),
        _ => Err(RpcErr::bad(format!("INPUT_METHOD_INVALID_{name}"))),
    }
}
