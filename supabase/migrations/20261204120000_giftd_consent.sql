-- giftd schema version 6: nobody is linked without consent, and each role can call only what
-- it needs.
--
-- Applied after 20261202010000_giftd_leases.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- - Whose JWT: a top-level `telegram_id` claim no longer names a player. Only
--   `app_metadata.telegram_id` does: Supabase Auth lets only the server write `app_metadata`
--   (a user can change `user_metadata`). The web app sets it with the service-role key, once
--   it verified a Telegram login (the Login Widget's or Mini App's signed data):
--   `auth.admin.updateUserById(id, { app_metadata: { telegram_id } })`. An access-token hook
--   must never copy a `user_metadata` value into it.
-- - Link tokens carry a label naming the web account (a masked e-mail or phone from the JWT
--   when the web app mints one, what the operator typed for `giftd link-token --label`). The
--   bot only asks (`giftd_peek_link_token`); the player's Confirm spends the token
--   (`giftd_consume_link_token`), and replacing the player's existing link to another web
--   account needs its own confirmation (`p_replace`). A replaced web account finds the
--   replacement in `web_link_replacements` (row level security: its own rows).
-- - `request_link_token` refuses anonymous sessions (`is_anonymous`).
-- - `request_withdrawal` answers `not_found` for an item that is not the caller's.
-- - The daily budget is summed under a transaction advisory lock per deposit account and kind
--   of request, so two moves at once cannot both fit under it.
-- - A regular gift the house kept after buying one for its player (withdrawn, still in the
--   account) may be refunded by Telegram afterwards: `withdrawn -> refunded` is a legal move,
--   written with the ledger kind `refunded_after_resend`.
-- - EXECUTE: PostgreSQL grants it to PUBLIC on every new function. Revoked on every giftd
--   function; `authenticated` may call `request_withdrawal`, `request_link_token` and the JWT
--   helpers row level security calls; `anon` none.

-- ---------------------------------------------------------------------------------------------
-- Whose JWT
-- ---------------------------------------------------------------------------------------------

create or replace function giftd_private.jwt_telegram_id() returns bigint
language sql stable set search_path = '' as $$
  select case
    when (auth.jwt() -> 'app_metadata' ->> 'telegram_id') ~ '^-?[0-9]{1,18}$'
    then (auth.jwt() -> 'app_metadata' ->> 'telegram_id')::bigint
  end
$$;

-- ---------------------------------------------------------------------------------------------
-- Link tokens with a label, links with consent
-- ---------------------------------------------------------------------------------------------

alter table public.link_tokens add column label text not null default ''
  check (length(label) <= 64);
alter table public.web_links add column label text not null default ''
  check (length(label) <= 64);

create table public.web_link_replacements (
  id bigint generated always as identity primary key,
  -- The web account whose link was replaced, and the Telegram user it was linked to.
  web_user_id uuid not null,
  telegram_user_id bigint not null,
  -- The web account the Telegram user linked instead.
  replaced_by uuid not null,
  replaced_at timestamptz not null default now()
);
create index web_link_replacements_web_user on public.web_link_replacements (web_user_id, id);
alter table public.web_link_replacements enable row level security;
revoke all on public.web_link_replacements from public, anon, authenticated;
grant select, insert, delete on public.web_link_replacements to service_role;
grant select on public.web_link_replacements to authenticated;
create policy web_link_replacements_own on public.web_link_replacements for select
  to authenticated using (web_user_id = (select giftd_private.jwt_web_user()));

drop function public.giftd_create_link_token(text, uuid, bigint);
create function public.giftd_create_link_token(p_token_hash text, p_web_user_id uuid,
  p_label text, p_ttl_ms bigint) returns bigint
language sql volatile set search_path = '' as $$
  insert into public.link_tokens (token_hash, web_user_id, label, expires_at)
  values (p_token_hash, p_web_user_id, p_label, now() + p_ttl_ms * interval '1 millisecond')
  returning (extract(epoch from expires_at) * 1000)::bigint
$$;

-- What `/start <token>` shows before anything is written: `{state: ask, web_user_id, label,
-- replaces?, replaces_label?}` (replaces: the web account the player is linked to now, when it
-- is another), `{state: linked, web_user_id, label}` (this player spent it and is still linked),
-- or `{state: used | expired | unknown}`.
create function public.giftd_peek_link_token(p_token_hash text, p_telegram_user_id bigint)
returns jsonb
language plpgsql stable set search_path = '' as $$
declare
  t record;
  l record;
begin
  select * into t from public.link_tokens where token_hash = p_token_hash;
  if not found then
    return jsonb_build_object('state', 'unknown');
  end if;
  if t.used_at is not null then
    if t.used_by = p_telegram_user_id and exists (
      select 1 from public.web_links
      where web_user_id = t.web_user_id and telegram_user_id = p_telegram_user_id)
    then
      return jsonb_build_object('state', 'linked', 'web_user_id', t.web_user_id,
        'label', t.label);
    end if;
    return jsonb_build_object('state', 'used');
  end if;
  if t.expires_at <= now() then
    return jsonb_build_object('state', 'expired');
  end if;
  select * into l from public.web_links
  where telegram_user_id = p_telegram_user_id and web_user_id <> t.web_user_id;
  return jsonb_build_object('state', 'ask', 'web_user_id', t.web_user_id, 'label', t.label,
    'replaces', l.web_user_id, 'replaces_label', l.label);
end
$$;

-- The player's Confirm: spends the token for p_telegram_user_id and links the two, one
-- transaction. When the player is linked to another web account and p_replace is false, writes
-- nothing and answers `{state: needs_replace, ...}` (the bot asks again); with p_replace the
-- old link goes and the replaced web account gets a `web_link_replacements` row. The web
-- account's own earlier link (to another Telegram user) is replaced too: its owner minted this
-- token. States as giftd_peek_link_token's, and `linked` once linked.
drop function public.giftd_consume_link_token(text, bigint);
create function public.giftd_consume_link_token(p_token_hash text, p_telegram_user_id bigint,
  p_replace boolean) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  t record;
  l record;
begin
  -- Links are made one at a time (at the pace players press Confirm): two tokens spent at once
  -- for the same Telegram user or the same web account would otherwise both delete the old
  -- link and collide on the new one's unique keys. A transaction lock: released at commit.
  perform pg_advisory_xact_lock(1734437204, 1);
  select * into t from public.link_tokens where token_hash = p_token_hash for update;
  if not found then
    return jsonb_build_object('state', 'unknown');
  end if;
  if t.used_at is not null then
    if t.used_by = p_telegram_user_id and exists (
      select 1 from public.web_links
      where web_user_id = t.web_user_id and telegram_user_id = p_telegram_user_id)
    then
      return jsonb_build_object('state', 'linked', 'web_user_id', t.web_user_id,
        'label', t.label);
    end if;
    return jsonb_build_object('state', 'used');
  end if;
  if t.expires_at <= now() then
    return jsonb_build_object('state', 'expired');
  end if;
  select * into l from public.web_links
  where telegram_user_id = p_telegram_user_id and web_user_id <> t.web_user_id;
  if found and not p_replace then
    return jsonb_build_object('state', 'needs_replace', 'web_user_id', t.web_user_id,
      'label', t.label, 'replaces', l.web_user_id, 'replaces_label', l.label);
  end if;
  if found then
    insert into public.web_link_replacements (web_user_id, telegram_user_id, replaced_by)
    values (l.web_user_id, p_telegram_user_id, t.web_user_id);
  end if;
  update public.link_tokens set used_at = now(), used_by = p_telegram_user_id
  where token_hash = p_token_hash;
  delete from public.web_links
  where web_user_id = t.web_user_id or telegram_user_id = p_telegram_user_id;
  insert into public.web_links (web_user_id, telegram_user_id, label)
  values (t.web_user_id, p_telegram_user_id, t.label);
  return jsonb_build_object('state', 'linked', 'web_user_id', t.web_user_id, 'label', t.label);
end
$$;

-- The replacements of `p_web_user_id`'s links, newest first:
-- `[{telegram_user_id, replaced_by, replaced_at_ms}]`.
create function public.giftd_replaced_links(p_web_user_id uuid) returns jsonb
language sql stable set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object('telegram_user_id', r.telegram_user_id,
      'replaced_by', r.replaced_by,
      'replaced_at_ms', (extract(epoch from r.replaced_at) * 1000)::bigint) order by r.id desc),
    '[]')
  from public.web_link_replacements r where r.web_user_id = p_web_user_id
$$;

-- The web app, for its signed-in, non-anonymous user: as in version 4, and the token carries
-- a label made here from the JWT (never from an argument): the e-mail masked
-- (`a•••@example.com`), else the phone masked (`•••1234`). Anonymous sessions
-- (`is_anonymous`) get `{error: anonymous}`, sessions with neither e-mail nor phone
-- `{error: no_identity}`.
create or replace function public.request_link_token(p_ttl_seconds integer default 900)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
declare
  v_user uuid := giftd_private.jwt_web_user();
  v_email text := nullif(auth.jwt() ->> 'email', '');
  v_phone text := nullif(auth.jwt() ->> 'phone', '');
  v_label text;
  v_token text;
  v_expires timestamptz;
begin
  if v_user is null or coalesce(auth.jwt() ->> 'role', '') <> 'authenticated' then
    return jsonb_build_object('error', 'not_signed_in');
  end if;
  if coalesce(auth.jwt() ->> 'is_anonymous', 'false') <> 'false' then
    return jsonb_build_object('error', 'anonymous');
  end if;
  if v_email is not null and position('@' in v_email) > 1 then
    v_label := left(left(v_email, 1) || '•••' || substr(v_email, position('@' in v_email)), 64);
  elsif v_phone is not null and length(v_phone) >= 4 then
    v_label := '•••' || right(v_phone, 4);
  else
    return jsonb_build_object('error', 'no_identity');
  end if;
  if p_ttl_seconds is null or p_ttl_seconds < 60 or p_ttl_seconds > 86400 then
    return jsonb_build_object('error', 'bad_ttl', 'min', 60, 'max', 86400);
  end if;
  delete from public.link_tokens
  where web_user_id = v_user and expires_at < now() - interval '7 days';
  if (select count(*) from public.link_tokens
      where web_user_id = v_user and used_at is null and expires_at > now()) >= 10 then
    return jsonb_build_object('error', 'too_many_tokens');
  end if;
  v_token := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  insert into public.link_tokens (token_hash, web_user_id, label, expires_at)
  values (encode(sha256(convert_to(v_token, 'UTF8')), 'hex'), v_user, v_label,
    now() + p_ttl_seconds * interval '1 second')
  returning expires_at into v_expires;
  return jsonb_build_object('token', v_token, 'web_user_id', v_user, 'label', v_label,
    'expires_at_ms', (extract(epoch from v_expires) * 1000)::bigint);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Withdrawals: one answer for "not found" and "not yours"; the daily budget serialized
-- ---------------------------------------------------------------------------------------------

create or replace function public.request_withdrawal(p_account_id bigint, p_msg_id integer)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
declare
  v_user bigint := giftd_private.jwt_player_id();
  v_answer jsonb;
begin
  if v_user is null then
    return jsonb_build_object('error', 'not_signed_in');
  end if;
  v_answer := public.giftd_create_withdrawal(p_account_id, p_msg_id, v_user);
  -- Someone else's item is, to the caller, no item: nothing tells which items exist.
  if v_answer ->> 'error' = 'not_owner' then
    return jsonb_build_object('error', 'not_found');
  end if;
  return v_answer;
end
$$;

-- A move that checks the daily budget first takes a transaction advisory lock on (deposit
-- account, kind): two such moves at once are serialized, so the second sums the first's
-- spending (each statement of a volatile function reads a fresh snapshot).
create or replace function public.giftd_move_withdrawal(p_move jsonb) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  w record;
begin
  if p_move ? 'daily_budget' then
    select account_id, kind into w from public.withdrawals
    where id = (p_move ->> 'id')::bigint;
    if found then
      perform pg_advisory_xact_lock(
        hashtextextended('giftd_daily_budget:' || w.account_id || ':' || w.kind, 0));
    end if;
  end if;
  return giftd_private.move_withdrawal(p_move);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- A refund after a resend
-- ---------------------------------------------------------------------------------------------

-- Mirror of `gift::Status::transition`.
create or replace function giftd_private.legal_transition(p_from text, p_to text)
returns boolean
language sql immutable set search_path = '' as $$
  select (p_from, p_to) in (
      ('held', 'withdraw_requested'),
      ('withdraw_requested', 'withdrawing'), ('withdraw_requested', 'held'),
      ('withdrawing', 'withdrawn'), ('withdrawing', 'held'),
      ('withdrawing', 'withdraw_requested'),
      ('withdrawn', 'refunded'))
    or (p_from in ('held', 'withdraw_requested', 'withdrawing')
        and p_to in ('converted', 'refunded', 'upgraded', 'gone'))
$$;

alter table public.transactions drop constraint transactions_kind_check;
alter table public.transactions add constraint transactions_kind_check check (kind in (
  'deposit', 'withdraw_requested', 'withdraw_cancelled', 'withdraw_started', 'withdraw_sending',
  'withdraw_unknown', 'withdraw_deferred', 'withdraw_approved', 'withdraw_failed', 'withdrawn',
  'converted', 'refunded', 'refunded_after_resend', 'upgraded', 'gone', 'assigned',
  'attributed'));

-- ---------------------------------------------------------------------------------------------
-- EXECUTE privileges
-- ---------------------------------------------------------------------------------------------

alter default privileges in schema giftd_private revoke execute on functions from public;

do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
    where p.pronamespace = 'giftd_private'::regnamespace
      or (p.pronamespace = 'public'::regnamespace
        and (p.proname like 'giftd\_%' or p.proname in ('request_withdrawal', 'request_link_token')))
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
grant execute on function public.request_withdrawal(bigint, integer),
  public.request_link_token(integer), giftd_private.jwt_telegram_id(),
  giftd_private.jwt_web_user(), giftd_private.jwt_player_id() to authenticated;

update public.schema_version set version = v.version, migration = v.migration, applied_at = now()
from (values (6, '20261204120000_giftd_consent')) as v (version, migration);
