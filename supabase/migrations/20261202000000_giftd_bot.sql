-- giftd schema version 4: the companion bot's store side (issue 9).
--
-- Applied after 20261201200000_giftd_withdrawals.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- - Link tokens are minted for a web account (a Supabase auth user, `auth.uid()`, a uuid), not
--   for a Telegram user: the web app calls `request_link_token` for its signed-in user (the
--   plaintext is returned once, only its SHA-256 is kept), operators run `giftd link-token`.
--   The bot spends a token with `giftd_consume_link_token`, which links the web account to the
--   Telegram user who sent it, in one transaction. Tokens minted before this migration named a
--   Telegram user and cannot be converted: they are deleted (nothing minted them for a web
--   account, and they lived minutes).
-- - `web_links`: one Telegram user per web account and one web account per Telegram user; the
--   newest link wins on both sides (both took part in it: the web user minted the token while
--   signed in, the Telegram user sent it from their account).
-- - Row level security: a JWT (role `authenticated`) reads the rows of its player, who is the
--   `telegram_id` claim as before, or else the Telegram user linked to its `sub`. So the web
--   app's ordinary Supabase session (which carries only `sub`) works once the player linked,
--   and `request_withdrawal` accepts it too.
-- - `notifications`: the outbox of what players are told (a gift credited to them; each step
--   of their withdrawals), written in the same transaction as the change that causes it, once
--   (a unique dedupe key, and only the call that made the change writes it), and handed to the
--   bot at most once (`giftd_claim_notifications` / `giftd_finish_notifications`; a row claimed
--   and never reported is marked `unknown` after its lease, never handed out again).

-- ---------------------------------------------------------------------------------------------
-- Link tokens and web links
-- ---------------------------------------------------------------------------------------------

delete from public.link_tokens;
alter table public.link_tokens
  drop column user_id,
  add column web_user_id uuid not null,
  -- The Telegram user who spent it (so the same player opening the same link again gets the
  -- same answer).
  add column used_by bigint;
create index link_tokens_web_user on public.link_tokens (web_user_id);

create table public.web_links (
  web_user_id uuid primary key,
  telegram_user_id bigint not null unique,
  linked_at timestamptz not null default now()
);

-- ---------------------------------------------------------------------------------------------
-- The notifications outbox (src/store/notify.rs)
-- ---------------------------------------------------------------------------------------------

create table public.notifications (
  id bigint generated always as identity primary key,
  -- The credit's ledger key, or `withdrawal:<id>:<step>`: a replay writes nothing twice.
  dedupe_key text not null unique,
  kind text not null check (kind in ('deposit', 'attributed', 'assigned', 'withdrawal_queued',
    'withdrawal_sent', 'withdrawal_waiting', 'withdrawal_failed', 'withdrawal_cancelled')),
  -- The Telegram user to tell.
  user_id bigint not null,
  -- What the bot renders, copied from the item and its gift when the row is written.
  account_id bigint not null,
  msg_id integer not null,
  gift_id bigint not null,
  title text,
  stars bigint not null,
  slug text,
  number integer,
  withdrawal_id bigint,
  wait_reason text,
  -- Unix ms until which the request waits, when known.
  until_ms bigint,
  reason text,
  -- pending -> claimed -> sent | undeliverable | unknown (claimed, never reported before the
  -- lease ran out: perhaps sent, never sent again); claimed -> pending when released.
  state text not null default 'pending'
    check (state in ('pending', 'claimed', 'sent', 'undeliverable', 'unknown')),
  created_at timestamptz not null default now(),
  claimed_at timestamptz,
  lease_until timestamptz,
  finished_at timestamptz,
  -- Why it is undeliverable or unknown.
  error text
);
-- The claim: the oldest pending rows, without reading the finished ones.
create index notifications_pending on public.notifications (id) where state = 'pending';
-- Pending rows too old to send (a range scan, however long the backlog).
create index notifications_pending_age on public.notifications (created_at)
  where state = 'pending';
-- Claims whose lease ran out.
create index notifications_claimed on public.notifications (lease_until) where state = 'claimed';
-- Retention: finished rows by age.
create index notifications_finished on public.notifications (finished_at)
  where state in ('sent', 'undeliverable', 'unknown');

-- ---------------------------------------------------------------------------------------------
-- Privileges and row level security
-- ---------------------------------------------------------------------------------------------

alter table public.web_links enable row level security;
alter table public.notifications enable row level security;
revoke all on public.web_links, public.notifications from public, anon, authenticated;
grant select, insert, update, delete on public.web_links, public.notifications to service_role;

-- The web account of the JWT that made the request (its `sub`), or null (anon, service_role, a
-- missing or malformed claim). Never raises, so a bad token reads nothing instead of failing.
create function giftd_private.jwt_web_user() returns uuid
language sql stable set search_path = '' as $$
  select case
    when (auth.jwt() ->> 'sub') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    then (auth.jwt() ->> 'sub')::uuid
  end
$$;

-- The player whose rows the JWT may read: its `telegram_id` claim, else the Telegram user its
-- `sub` is linked to, else null. Security definer: it reads web_links, which players cannot.
create function giftd_private.jwt_player_id() returns bigint
language sql stable security definer set search_path = '' as $$
  select coalesce(giftd_private.jwt_telegram_id(),
    (select l.telegram_user_id from public.web_links l
     where l.web_user_id = giftd_private.jwt_web_user()))
$$;

revoke all on function giftd_private.jwt_web_user(), giftd_private.jwt_player_id() from public;
grant execute on function giftd_private.jwt_web_user(), giftd_private.jwt_player_id()
  to authenticated, service_role;

-- A player reads their own rows, whether the JWT names them (`telegram_id`) or its `sub` is
-- linked to them. `(select ...)` is evaluated once per query, not once per row.
drop policy users_own on public.users;
drop policy inventory_own on public.inventory;
drop policy transactions_own on public.transactions;
drop policy withdrawals_own on public.withdrawals;
create policy users_own on public.users for select to authenticated
  using (id = (select giftd_private.jwt_player_id()));
create policy inventory_own on public.inventory for select to authenticated
  using (owner_id = (select giftd_private.jwt_player_id()));
create policy transactions_own on public.transactions for select to authenticated
  using (owner_id = (select giftd_private.jwt_player_id()));
create policy withdrawals_own on public.withdrawals for select to authenticated
  using (owner_id = (select giftd_private.jwt_player_id()));
-- A web user sees their own link (to show "linked to Telegram user ..."); nobody else's.
grant select on public.web_links to authenticated;
create policy web_links_own on public.web_links for select to authenticated
  using (web_user_id = (select giftd_private.jwt_web_user()));
-- link_tokens, notifications: no policy, so only service_role (bypassrls) sees them.

-- The web app: a signed-in player asks for one of their own held items. The owner is the
-- caller's `telegram_id` claim or the Telegram user linked to its `sub`, never an argument.
create or replace function public.request_withdrawal(p_account_id bigint, p_msg_id integer)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
declare
  v_user bigint := giftd_private.jwt_player_id();
begin
  if v_user is null then
    return jsonb_build_object('error', 'not_signed_in');
  end if;
  return public.giftd_create_withdrawal(p_account_id, p_msg_id, v_user);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Notifications: written by the functions below, in their transaction
-- ---------------------------------------------------------------------------------------------

-- Writes one notification about an item, unless one with this dedupe key exists; the gift, its
-- title, value and collectible are read from the store.
create function giftd_private.notify(p_dedupe_key text, p_kind text, p_user_id bigint,
  p_account_id bigint, p_msg_id integer, p_withdrawal_id bigint, p_wait_reason text,
  p_until_ms bigint, p_reason text) returns void
language sql volatile set search_path = '' as $$
  insert into public.notifications (dedupe_key, kind, user_id, account_id, msg_id, gift_id,
    title, stars, slug, number, withdrawal_id, wait_reason, until_ms, reason)
  select p_dedupe_key, p_kind, p_user_id, i.account_id, i.msg_id, i.gift_id, g.title, i.stars,
    i.slug, i.number, p_withdrawal_id, p_wait_reason, p_until_ms, p_reason
  from public.inventory i left join public.gifts g on g.gift_id = i.gift_id
  where i.account_id = p_account_id and i.msg_id = p_msg_id
  on conflict (dedupe_key) do nothing
$$;

create function giftd_private.notification_json(n public.notifications) returns jsonb
language sql stable set search_path = '' as $$
  select jsonb_build_object(
    'id', n.id, 'kind', n.kind, 'user_id', n.user_id, 'account_id', n.account_id,
    'msg_id', n.msg_id, 'gift_id', n.gift_id, 'title', n.title, 'stars', n.stars,
    'slug', n.slug, 'number', n.number, 'withdrawal_id', n.withdrawal_id,
    'wait_reason', n.wait_reason, 'until_ms', n.until_ms, 'reason', n.reason,
    'created_at_ms', (extract(epoch from n.created_at) * 1000)::bigint)
$$;

revoke all on function giftd_private.notify(text, text, bigint, bigint, integer, bigint, text,
  bigint, text), giftd_private.notification_json(public.notifications) from public;
grant execute on function giftd_private.notify(text, text, bigint, bigint, integer, bigint, text,
  bigint, text), giftd_private.notification_json(public.notifications) to service_role;

-- Records a batch (as in version 2), and announces each credit to its player: a new item
-- held and owned, an attribution, and a request cancelled because its item left.
create or replace function public.giftd_apply_batch(p_batch jsonb) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_distinct integer;
  v_new integer;
  v_applied integer := 0;
  v_unchanged integer := 0;
  v_attributed integer := 0;
  v_attr_skipped integer := 0;
  v_changed integer;
  v_refused jsonb := '[]'::jsonb;
  c record;
  v_cur record;
  w public.withdrawals;
begin
  insert into public.users as u (id, username, first_name)
  select distinct on (x.id) x.id, x.username, x.first_name
  from jsonb_to_recordset(coalesce(p_batch -> 'users', '[]')) as x (id bigint, username text,
    first_name text)
  order by x.id
  on conflict (id) do update set username = excluded.username,
    first_name = excluded.first_name, updated_at = now()
  where (u.username, u.first_name) is distinct from (excluded.username, excluded.first_name);

  insert into public.gifts as g (gift_id, title, stars, is_unique)
  select distinct on (x.gift_id) x.gift_id, x.title, x.stars, x."unique"
  from jsonb_to_recordset(coalesce(p_batch -> 'gifts', '[]')) as x (gift_id bigint, title text,
    stars bigint, "unique" boolean)
  order by x.gift_id
  on conflict (gift_id) do update set title = coalesce(excluded.title, g.title),
    stars = excluded.stars, is_unique = excluded.is_unique, updated_at = now()
  where (coalesce(excluded.title, g.title), excluded.stars, excluded.is_unique)
    is distinct from (g.title, g.stars, g.is_unique);

  -- Owners and kinds the batch did not describe still get a row, so the foreign keys hold.
  -- (The items are read from the JSON once per statement: no temporary table, so no catalog
  -- churn per batch and no need for the TEMP privilege.)
  insert into public.users (id)
  select distinct x.owner_id
  from jsonb_to_recordset(coalesce(p_batch -> 'items', '[]')) as x (owner_id bigint)
  where x.owner_id is not null
  order by 1
  on conflict (id) do nothing;
  insert into public.gifts (gift_id, title, stars, is_unique)
  select distinct on (x.gift_id) x.gift_id, null, x.stars, x.collectible_id is not null
  from jsonb_to_recordset(coalesce(p_batch -> 'items', '[]')) as x (gift_id bigint, stars bigint,
    collectible_id bigint)
  order by x.gift_id
  on conflict (gift_id) do nothing;

  -- New items are recorded; each one held and credited to a player is announced once (only
  -- the batch that records the item writes its notification).
  with new_items as (
  insert into public.inventory (account_id, msg_id, owner_id, gift_id, stars, collectible_id,
    slug, number, status, upgraded_into, upgraded_from, received_at, convert_stars,
    transfer_stars, can_transfer_at)
  select distinct on (x.account_id, x.msg_id) x.account_id, x.msg_id, x.owner_id, x.gift_id,
    x.stars, x.collectible_id, x.slug, x.number, x.status, x.upgraded_into, x.upgraded_from,
    x.received_at, x.convert_stars, x.transfer_stars, x.can_transfer_at
  from jsonb_to_recordset(coalesce(p_batch -> 'items', '[]')) as x (account_id bigint,
    msg_id integer, owner_id bigint, gift_id bigint, stars bigint, collectible_id bigint,
    slug text, number integer, status text, upgraded_into integer, upgraded_from integer,
    received_at bigint, convert_stars bigint, transfer_stars bigint, can_transfer_at bigint)
  order by x.account_id, x.msg_id
  on conflict (account_id, msg_id) do nothing
  returning account_id, msg_id, owner_id, status, gift_id, stars, slug, number
  ), told as (
    -- (A sub-statement does not see the rows another one inserts: the values come from
    -- RETURNING; the gifts were written by an earlier statement.)
    insert into public.notifications (dedupe_key, kind, user_id, account_id, msg_id, gift_id,
      title, stars, slug, number)
    select 'deposit:' || n.account_id || '/' || n.msg_id, 'deposit', n.owner_id, n.account_id,
      n.msg_id, n.gift_id, g.title, n.stars, n.slug, n.number
    from new_items n
    left join public.gifts g on g.gift_id = n.gift_id
    where n.owner_id is not null and n.status = 'held'
    order by n.account_id, n.msg_id
    on conflict (dedupe_key) do nothing
  )
  select count(*) into v_new from new_items;
  select count(*) into v_distinct
  from (select distinct x.account_id, x.msg_id
        from jsonb_to_recordset(coalesce(p_batch -> 'items', '[]'))
          as x (account_id bigint, msg_id integer)) as d;

  insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind, stars, at)
  select x.idempotency_key, x.account_id, x.msg_id, x.owner_id, x.kind, x.stars, x.at
  from jsonb_to_recordset(coalesce(p_batch -> 'ledger', '[]')) as x (idempotency_key text,
    account_id bigint, msg_id integer, owner_id bigint, kind text, stars bigint, at bigint)
  order by x.idempotency_key
  on conflict (idempotency_key) do nothing;

  for c in
    select * from jsonb_to_recordset(coalesce(p_batch -> 'changes', '[]')) as x (
      account_id bigint, msg_id integer, status text, upgraded_into integer, entry jsonb)
    order by x.account_id, x.msg_id
  loop
    select i.status, i.upgraded_into into v_cur from public.inventory i
    where i.account_id = c.account_id and i.msg_id = c.msg_id
    for update;
    if not found then
      v_refused := v_refused || jsonb_build_array(jsonb_build_object(
        'account_id', c.account_id, 'msg_id', c.msg_id, 'status', c.status,
        'upgraded_into', c.upgraded_into, 'current', null, 'current_upgraded_into', null));
    elsif v_cur.status = c.status and v_cur.upgraded_into is not distinct from c.upgraded_into then
      v_unchanged := v_unchanged + 1;
    elsif not giftd_private.legal_transition(v_cur.status, c.status) then
      v_refused := v_refused || jsonb_build_array(jsonb_build_object(
        'account_id', c.account_id, 'msg_id', c.msg_id, 'status', c.status,
        'upgraded_into', c.upgraded_into, 'current', v_cur.status,
        'current_upgraded_into', v_cur.upgraded_into));
    else
      update public.inventory set status = c.status, upgraded_into = c.upgraded_into,
        updated_at = now()
      where account_id = c.account_id and msg_id = c.msg_id;
      insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind,
        stars, at)
      values (c.entry ->> 'idempotency_key', c.account_id, c.msg_id,
        (c.entry ->> 'owner_id')::bigint, c.entry ->> 'kind', (c.entry ->> 'stars')::bigint,
        (c.entry ->> 'at')::bigint)
      on conflict (idempotency_key) do nothing;
      -- A request nobody has claimed yet cannot be served any more; its player is told.
      for w in
        update public.withdrawals set status = 'cancelled', completed_at = now(),
          reason = 'item left the account: ' || c.status
        where account_id = c.account_id and msg_id = c.msg_id
          and status in ('requested', 'approval', 'waiting')
        returning *
      loop
        perform giftd_private.notify('withdrawal:' || w.id || ':withdrawal_cancelled',
          'withdrawal_cancelled', w.owner_id, w.account_id, w.msg_id, w.id, null, null,
          w.reason);
      end loop;
      -- The collectible an upgrade made points back at the gift it came from.
      if c.status = 'upgraded' then
        update public.inventory set upgraded_from = c.msg_id, updated_at = now()
        where account_id = c.account_id and msg_id = c.upgraded_into and upgraded_from is null;
      end if;
      v_applied := v_applied + 1;
    end if;
  end loop;

  -- Items recorded without a sender that Telegram has since named one for: only an item that
  -- still has no owner (never over an operator's assignment), each ledger entry once.
  for c in
    select * from jsonb_to_recordset(coalesce(p_batch -> 'attributions', '[]')) as x (
      account_id bigint, msg_id integer, owner_id bigint, entry jsonb)
    order by x.account_id, x.msg_id
  loop
    insert into public.users (id) values (c.owner_id) on conflict (id) do nothing;
    update public.inventory set owner_id = c.owner_id, updated_at = now()
    where account_id = c.account_id and msg_id = c.msg_id and owner_id is null;
    get diagnostics v_changed = row_count;
    if v_changed > 0 then
      insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind,
        stars, at)
      values (c.entry ->> 'idempotency_key', c.account_id, c.msg_id, c.owner_id,
        c.entry ->> 'kind', (c.entry ->> 'stars')::bigint, (c.entry ->> 'at')::bigint)
      on conflict (idempotency_key) do nothing;
      perform giftd_private.notify(c.entry ->> 'idempotency_key', 'attributed', c.owner_id,
        c.account_id, c.msg_id, null, null, null, null);
      v_attributed := v_attributed + 1;
    else
      v_attr_skipped := v_attr_skipped + 1;
    end if;
  end loop;

  insert into public.sync_logs (pass_id, account_id, started_at, finished_at, items_seen,
    items_new, items_changed, error)
  select x.pass_id, x.account_id, x.started_at, x.finished_at, x.items_seen, x.items_new,
    x.items_changed, x.error
  from jsonb_to_recordset(coalesce(p_batch -> 'sync_logs', '[]')) as x (pass_id text,
    account_id bigint, started_at bigint, finished_at bigint, items_seen integer,
    items_new integer, items_changed integer, error text)
  on conflict (pass_id) do nothing;

  -- A collectible written in this batch after the end of the gift it was upgraded from.
  update public.inventory n set upgraded_from = o.msg_id, updated_at = now()
  from jsonb_to_recordset(coalesce(p_batch -> 'items', '[]')) as x (account_id bigint,
    msg_id integer), public.inventory o
  where n.account_id = x.account_id and n.msg_id = x.msg_id and n.upgraded_from is null
    and o.account_id = n.account_id and o.upgraded_into = n.msg_id and o.status = 'upgraded';

  return jsonb_build_object('items_new', v_new, 'items_known', v_distinct - v_new,
    'changes_applied', v_applied, 'changes_unchanged', v_unchanged, 'refused', v_refused,
    'attributed', v_attributed, 'attributions_skipped', v_attr_skipped);
end
$$;

-- An operator credits an anonymous item (as in version 1), and the player is told.
create or replace function public.giftd_assign_owner(p_account_id bigint, p_msg_id integer,
  p_owner_id bigint) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_item record;
begin
  select * into v_item from public.inventory
  where account_id = p_account_id and msg_id = p_msg_id for update;
  if not found then
    return jsonb_build_object('error', 'not_found');
  end if;
  if v_item.owner_id = p_owner_id then
    return jsonb_build_object('changed', false);
  end if;
  if v_item.owner_id is not null then
    return jsonb_build_object('error', 'already_owned', 'owner_id', v_item.owner_id);
  end if;
  insert into public.users (id) values (p_owner_id) on conflict (id) do nothing;
  update public.inventory set owner_id = p_owner_id, updated_at = now()
  where account_id = p_account_id and msg_id = p_msg_id;
  insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind, stars, at)
  values ('assigned:' || p_account_id || '/' || p_msg_id, p_account_id, p_msg_id, p_owner_id,
    'assigned', v_item.stars, extract(epoch from now())::bigint);
  perform giftd_private.notify('assigned:' || p_account_id || '/' || p_msg_id, 'assigned',
    p_owner_id, p_account_id, p_msg_id, null, null, null, null);
  return jsonb_build_object('changed', true);
end
$$;

-- A player asks for an item back (as in version 3); the request's creation is told.
create or replace function public.giftd_create_withdrawal(p_account_id bigint,
  p_msg_id integer, p_owner_id bigint) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_item record;
  v_id bigint;
begin
  select * into v_item from public.inventory
  where account_id = p_account_id and msg_id = p_msg_id for update;
  if not found then
    return jsonb_build_object('error', 'not_found');
  end if;
  if v_item.owner_id is distinct from p_owner_id then
    return jsonb_build_object('error', 'not_owner');
  end if;
  if v_item.status in ('withdraw_requested', 'withdrawing') then
    select id into v_id from public.withdrawals
    where account_id = p_account_id and msg_id = p_msg_id
      and status in ('requested', 'approval', 'waiting', 'claimed', 'sending', 'unknown');
    if found then
      return jsonb_build_object('id', v_id, 'created', false);
    end if;
  end if;
  if v_item.status <> 'held' then
    return jsonb_build_object('error', 'not_held', 'status', v_item.status,
      'upgraded_into', v_item.upgraded_into);
  end if;
  insert into public.withdrawals (account_id, msg_id, owner_id, kind)
  values (p_account_id, p_msg_id, p_owner_id,
    case when v_item.collectible_id is null then 'resend' else 'transfer' end)
  returning id into v_id;
  update public.inventory set status = 'withdraw_requested', updated_at = now()
  where account_id = p_account_id and msg_id = p_msg_id;
  insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind, stars, at)
  values ('withdraw_requested:' || p_account_id || '/' || p_msg_id || ':' || v_id, p_account_id,
    p_msg_id, p_owner_id, 'withdraw_requested', v_item.stars, extract(epoch from now())::bigint);
  perform giftd_private.notify('withdrawal:' || v_id || ':withdrawal_queued', 'withdrawal_queued',
    p_owner_id, p_account_id, p_msg_id, v_id, null, null, null);
  return jsonb_build_object('id', v_id, 'created', true);
end
$$;

-- One move of the state machine (as in version 3), and what the player is told of it.
create or replace function giftd_private.move_withdrawal(p_move jsonb) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  w public.withdrawals;
  v_to text := p_move ->> 'to';
  v_item record;
  v_same_claim boolean;
  v_fee bigint;
  v_spent bigint;
  v_stars bigint;
  v_ledger text := p_move ->> 'ledger_kind';
  v_kind text;
  v_wait text;
begin
  select * into w from public.withdrawals where id = (p_move ->> 'id')::bigint for update;
  if not found then
    return jsonb_build_object('error', 'not_found');
  end if;
  if p_move ? 'owner' and (p_move ->> 'owner')::bigint <> w.owner_id then
    return jsonb_build_object('error', 'not_owner');
  end if;
  v_same_claim := (not p_move ? 'worker' or w.worker_id is not distinct from p_move ->> 'worker')
    and (not p_move ? 'attempt' or w.attempt = (p_move ->> 'attempt')::integer);
  if w.status = v_to and v_same_claim then
    return jsonb_build_object('row', giftd_private.withdrawal_json(w));
  end if;
  if not (w.status in (select jsonb_array_elements_text(p_move -> 'from'))) or not v_same_claim
  then
    return jsonb_build_object('error', 'wrong_state', 'status', w.status,
      'worker_id', w.worker_id, 'attempt', w.attempt);
  end if;
  v_fee := coalesce((p_move ->> 'fee_stars')::bigint, w.fee_stars, 0);
  if p_move ? 'daily_budget' then
    select coalesce(sum(fee_stars), 0) into v_spent from public.withdrawals
    where account_id = w.account_id and kind = w.kind and id <> w.id
      and status in ('sending', 'unknown', 'sent')
      and sending_at >= date_trunc('day', now() at time zone 'utc') at time zone 'utc';
    if v_spent + v_fee > (p_move ->> 'daily_budget')::bigint then
      return jsonb_build_object('error', 'over_budget', 'fee', v_fee,
        'total', v_spent + v_fee, 'budget', (p_move ->> 'daily_budget')::bigint);
    end if;
  end if;
  update public.withdrawals set
    status = v_to,
    worker_id = case when p_move ? 'set_worker' then p_move ->> 'set_worker' else worker_id end,
    lease_until = case when p_move ? 'lease_ms'
      then now() + (p_move ->> 'lease_ms')::bigint * interval '1 millisecond'
      else lease_until end,
    not_before = case when p_move ? 'not_before_ms'
      then giftd_private.ms_to_ts((p_move ->> 'not_before_ms')::bigint) else not_before end,
    wait_reason = case when p_move ? 'wait_reason' then p_move ->> 'wait_reason'
      else wait_reason end,
    fee_stars = coalesce((p_move ->> 'fee_stars')::bigint, fee_stars),
    approved_stars = coalesce((p_move ->> 'approved_stars')::bigint, approved_stars),
    form_id = case when p_move ? 'form_id' then (p_move ->> 'form_id')::bigint else form_id end,
    reason = case when p_move ? 'reason' then p_move ->> 'reason' else reason end,
    attempt = case when (p_move ->> 'reset_attempts')::boolean then 0 else attempt end,
    sending_at = case when (p_move ->> 'mark_sending')::boolean then now() else sending_at end,
    completed_at = case when v_to in ('sent', 'failed', 'cancelled') then now()
      else completed_at end
  where id = w.id;
  -- The item follows the request, unless it already left the account (reconciliation
  -- recorded why).
  select * into v_item from public.inventory
  where account_id = w.account_id and msg_id = w.msg_id for update;
  if found and v_item.status <> p_move ->> 'item_to'
    and v_item.status in ('held', 'withdraw_requested', 'withdrawing') then
    update public.inventory set status = p_move ->> 'item_to',
      kept_by_house = (p_move ->> 'kept_by_house')::boolean, updated_at = now()
    where account_id = w.account_id and msg_id = w.msg_id;
  end if;
  v_stars := case when v_ledger in ('withdrawn', 'withdraw_sending') then v_fee
    else coalesce(v_item.stars, 0) end;
  insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind, stars, at)
  values (case when v_ledger = 'withdrawn'
      then 'withdrawn:' || w.account_id || '/' || w.msg_id
      else v_ledger || ':' || w.account_id || '/' || w.msg_id || ':' || w.id || ':' || w.attempt
    end, w.account_id, w.msg_id, w.owner_id, v_ledger, v_stars,
    extract(epoch from now())::bigint)
  on conflict (idempotency_key) do nothing;
  -- What the player is told (mirror of `store::notify::withdrawal_notice`): sent, failed and
  -- cancelled always; a wait unless it is a transient retry or the same reason as before; `w`
  -- still holds the request as it was before the move.
  v_kind := case v_to when 'sent' then 'withdrawal_sent' when 'failed' then 'withdrawal_failed'
    when 'cancelled' then 'withdrawal_cancelled' when 'waiting' then 'withdrawal_waiting'
    when 'approval' then 'withdrawal_waiting' end;
  v_wait := case when p_move ? 'wait_reason' then p_move ->> 'wait_reason' else w.wait_reason end;
  if v_kind = 'withdrawal_waiting' then
    if v_wait = 'retry' or v_wait is not distinct from w.wait_reason then
      v_kind := null;
    else
      perform giftd_private.notify('withdrawal:' || w.id || ':waiting:' || w.attempt || ':'
          || coalesce(v_wait, 'none'), v_kind, w.owner_id, w.account_id, w.msg_id, w.id, v_wait,
        case when p_move ? 'not_before_ms' then (p_move ->> 'not_before_ms')::bigint
          else (extract(epoch from w.not_before) * 1000)::bigint end,
        case when p_move ? 'reason' then p_move ->> 'reason' else w.reason end);
    end if;
  elsif v_kind is not null then
    perform giftd_private.notify('withdrawal:' || w.id || ':' || v_kind, v_kind, w.owner_id,
      w.account_id, w.msg_id, w.id, null, null,
      case when p_move ? 'reason' then p_move ->> 'reason' else w.reason end);
  end if;
  select * into w from public.withdrawals where id = w.id;
  return jsonb_build_object('row', giftd_private.withdrawal_json(w));
end
$$;

-- Hands out up to p_limit pending notifications, oldest first, claimed for p_lease_ms;
-- concurrent claimers skip each other's rows. First: claims whose lease ran out become
-- `unknown` (never handed out again: they may have been sent); up to 1,000 finished rows older
-- than 30 days are deleted, and up to 1,000 pending rows older than 7 days given up as stale
-- (the constants of src/store/notify.rs).
create function public.giftd_claim_notifications(p_limit integer, p_lease_ms bigint)
returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v jsonb;
begin
  update public.notifications set state = 'unknown', finished_at = now(),
    error = 'claimed and not reported before its lease ran out: perhaps sent, never sent again'
  where id in (select id from public.notifications
               where state = 'claimed' and lease_until < now()
               order by id for update skip locked);
  delete from public.notifications
  where id in (select id from public.notifications
               where state in ('sent', 'undeliverable', 'unknown')
                 and finished_at < now() - interval '30 days'
               limit 1000 for update skip locked);
  update public.notifications set state = 'undeliverable', finished_at = now(),
    error = 'stale: not sent within a week of the change'
  where id in (select id from public.notifications
               where state = 'pending' and created_at < now() - interval '7 days'
               order by created_at limit 1000 for update skip locked);
  with picked as (
    select id from public.notifications where state = 'pending'
    order by id limit p_limit for update skip locked
  ), claimed as (
    update public.notifications n set state = 'claimed', claimed_at = now(),
      lease_until = now() + p_lease_ms * interval '1 millisecond'
    from picked where n.id = picked.id
    returning n.*
  )
  select coalesce(jsonb_agg(giftd_private.notification_json(c) order by c.id), '[]')
  into v from claimed c;
  return v;
end
$$;

-- What became of claimed notifications: p_state 'sent', 'undeliverable' (p_error says why) or
-- 'pending' (released: definitely not sent). Only rows claimed or unknown change. Returns how
-- many did.
create function public.giftd_finish_notifications(p_ids jsonb, p_state text, p_error text)
returns bigint
language plpgsql volatile set search_path = '' as $$
declare
  v_n bigint;
begin
  if p_state not in ('sent', 'undeliverable', 'pending') then
    raise exception 'giftd_finish_notifications: unknown outcome %', p_state
      using errcode = 'invalid_parameter_value';
  end if;
  update public.notifications set state = p_state,
    error = nullif(p_error, ''),
    finished_at = case when p_state = 'pending' then null else now() end,
    lease_until = case when p_state = 'pending' then null else lease_until end
  where id in (select (jsonb_array_elements_text(p_ids))::bigint)
    and state in ('claimed', 'unknown');
  get diagnostics v_n = row_count;
  return v_n;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Link tokens: minted for a web account, spent by the bot
-- ---------------------------------------------------------------------------------------------

drop function public.giftd_create_link_token(text, bigint, bigint);
drop function public.giftd_consume_link_token(text);

-- giftd (`giftd link-token`): the token is made by giftd, only its hash arrives here.
create function public.giftd_create_link_token(p_token_hash text, p_web_user_id uuid,
  p_ttl_ms bigint) returns bigint
language sql volatile set search_path = '' as $$
  insert into public.link_tokens (token_hash, web_user_id, expires_at)
  values (p_token_hash, p_web_user_id, now() + p_ttl_ms * interval '1 millisecond')
  returning (extract(epoch from expires_at) * 1000)::bigint
$$;

-- The bot's `/start <token>`: spends the token for p_telegram_user_id and links the two, one
-- transaction. `{web_user_id}` when linked; `{error: unknown | used | expired}` otherwise, and
-- then nothing is written. The same player opening the same link again, still linked, gets
-- the same answer.
create function public.giftd_consume_link_token(p_token_hash text, p_telegram_user_id bigint)
returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  t record;
begin
  -- Links are made one at a time (at the pace players press Start): two tokens spent at once
  -- for the same Telegram user or the same web account would otherwise both delete the old
  -- link and collide on the new one's unique keys. A transaction lock: released at commit.
  perform pg_advisory_xact_lock(1734437204, 1);
  select * into t from public.link_tokens where token_hash = p_token_hash for update;
  if not found then
    return jsonb_build_object('error', 'unknown');
  end if;
  if t.used_at is not null then
    if t.used_by = p_telegram_user_id and exists (
      select 1 from public.web_links
      where web_user_id = t.web_user_id and telegram_user_id = p_telegram_user_id)
    then
      return jsonb_build_object('web_user_id', t.web_user_id);
    end if;
    return jsonb_build_object('error', 'used');
  end if;
  if t.expires_at <= now() then
    return jsonb_build_object('error', 'expired');
  end if;
  update public.link_tokens set used_at = now(), used_by = p_telegram_user_id
  where token_hash = p_token_hash;
  -- One to one, the newest link wins on both sides.
  delete from public.web_links
  where web_user_id = t.web_user_id or telegram_user_id = p_telegram_user_id;
  insert into public.web_links (web_user_id, telegram_user_id)
  values (t.web_user_id, p_telegram_user_id);
  return jsonb_build_object('web_user_id', t.web_user_id);
end
$$;

create function public.giftd_linked_telegram_user(p_web_user_id uuid) returns bigint
language sql stable set search_path = '' as $$
  select telegram_user_id from public.web_links where web_user_id = p_web_user_id
$$;

-- The web app, for its signed-in user: a new link token for the caller's own web account
-- (`sub`), valid p_ttl_seconds (60 to 86,400; 900 when not given). The plaintext is returned
-- once, `{token, expires_at_ms, web_user_id}`: show it as `t.me/<bot>?start=<token>`; only its
-- SHA-256 is kept. Refused for anon (no grant), for a JWT without a uuid `sub`
-- (`{error: not_signed_in}`), and while the user holds 10 unused tokens that have not expired
-- (`{error: too_many_tokens}`). 256 random bits from two gen_random_uuid() (244 bits: the
-- version and variant bits are fixed), hex like the tokens giftd makes.
create function public.request_link_token(p_ttl_seconds integer default 900)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
declare
  v_user uuid := giftd_private.jwt_web_user();
  v_token text;
  v_expires timestamptz;
begin
  if v_user is null or coalesce(auth.jwt() ->> 'role', '') <> 'authenticated' then
    return jsonb_build_object('error', 'not_signed_in');
  end if;
  if p_ttl_seconds is null or p_ttl_seconds < 60 or p_ttl_seconds > 86400 then
    return jsonb_build_object('error', 'bad_ttl', 'min', 60, 'max', 86400);
  end if;
  -- The caller's tokens that expired a week ago are of no use to anyone.
  delete from public.link_tokens
  where web_user_id = v_user and expires_at < now() - interval '7 days';
  if (select count(*) from public.link_tokens
      where web_user_id = v_user and used_at is null and expires_at > now()) >= 10 then
    return jsonb_build_object('error', 'too_many_tokens');
  end if;
  v_token := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  insert into public.link_tokens (token_hash, web_user_id, expires_at)
  values (encode(sha256(convert_to(v_token, 'UTF8')), 'hex'), v_user,
    now() + p_ttl_seconds * interval '1 second')
  returning expires_at into v_expires;
  return jsonb_build_object('token', v_token, 'web_user_id', v_user,
    'expires_at_ms', (extract(epoch from v_expires) * 1000)::bigint);
end
$$;
revoke all on function public.request_link_token(integer) from public, anon;
grant execute on function public.request_link_token(integer) to authenticated;

-- Only giftd (service_role) may call the giftd_* functions.
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
    where p.pronamespace = 'public'::regnamespace and p.proname like 'giftd\_%'
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;

update public.schema_version set version = v.version, migration = v.migration, applied_at = now()
from (values (4, '20261202000000_giftd_bot')) as v (version, migration);
