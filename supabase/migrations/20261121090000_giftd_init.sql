-- giftd schema version 1: the mirror of the deposit accounts' inventory.
--
-- Applied by `supabase db push` or `psql -v ON_ERROR_STOP=1 -1 -f <this file>`. `giftd schema`
-- prints it. giftd refuses to run when `giftd_schema_version()` is older than it needs.
--
-- Roles (as Supabase has them): giftd writes as `service_role` (bypasses RLS), a player's JWT
-- (role `authenticated`, claim `telegram_id`) reads only that player's rows, `anon` reads nothing
-- private. Multi-row changes are the `giftd_*` functions below, called as PostgREST RPC: one
-- transaction each, all or nothing, safe to replay.

create schema if not exists giftd_private;
revoke all on schema giftd_private from public;
grant usage on schema giftd_private to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Helpers (not exposed through PostgREST: giftd_private is not in the API schemas)
-- ---------------------------------------------------------------------------------------------

-- The Telegram user id of the player whose JWT made the request, or null (anon, service_role, a
-- missing or malformed claim). Never raises, so a bad token reads nothing instead of failing.
create function giftd_private.jwt_telegram_id() returns bigint
language sql stable set search_path = '' as $$
  select case
    when (auth.jwt() ->> 'telegram_id') ~ '^-?[0-9]{1,18}$'
    then (auth.jwt() ->> 'telegram_id')::bigint
  end
$$;

-- Mirror of `gift::Status::transition` (src/gift.rs): the moves an item may make.
create function giftd_private.legal_transition(p_from text, p_to text) returns boolean
language sql immutable set search_path = '' as $$
  select (p_from, p_to) in (
      ('held', 'withdraw_requested'),
      ('withdraw_requested', 'withdrawing'), ('withdraw_requested', 'held'),
      ('withdrawing', 'withdrawn'), ('withdrawing', 'held'))
    or (p_from in ('held', 'withdraw_requested', 'withdrawing')
        and p_to in ('converted', 'refunded', 'upgraded', 'gone'))
$$;

create function giftd_private.forbid_ledger_change() returns trigger
language plpgsql set search_path = '' as $$
begin
  raise exception 'public.transactions is an append-only ledger: % refused', tg_op
    using errcode = 'restrict_violation';
end
$$;

grant execute on function giftd_private.jwt_telegram_id() to authenticated, service_role;
revoke all on function giftd_private.legal_transition(text, text) from public;
grant execute on function giftd_private.legal_transition(text, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

-- One row: the schema version giftd checks at start.
create table public.schema_version (
  id boolean primary key default true check (id),
  version integer not null,
  migration text not null,
  applied_at timestamptz not null default now(),
  -- Touched by `giftd check` to prove the key may write.
  checked_at timestamptz
);
insert into public.schema_version (version, migration) values (1, '20261121090000_giftd_init');

-- Telegram users: players who sent gifts, linked their account or asked for a withdrawal.
create table public.users (
  id bigint primary key,
  username text,
  first_name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- The gift catalogue: one row per kind of star gift.
create table public.gifts (
  gift_id bigint primary key,
  title text,
  stars bigint not null,
  is_unique boolean not null,
  updated_at timestamptz not null default now()
);

-- Every item a deposit account holds or once held, keyed like Telegram keys it.
create table public.inventory (
  account_id bigint not null,
  msg_id integer not null,
  -- null: sent anonymously, waiting for an operator to assign it.
  owner_id bigint references public.users (id),
  gift_id bigint not null references public.gifts (gift_id),
  stars bigint not null,
  collectible_id bigint,
  slug text,
  number integer,
  status text not null check (status in ('held', 'withdraw_requested', 'withdrawing',
    'withdrawn', 'converted', 'refunded', 'upgraded', 'gone')),
  upgraded_into integer,
  upgraded_from integer,
  -- Unix seconds of the service message that delivered the item.
  received_at bigint not null,
  convert_stars bigint,
  transfer_stars bigint,
  can_transfer_at bigint,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (account_id, msg_id),
  check ((status = 'upgraded') = (upgraded_into is not null)),
  check ((collectible_id is null) = (slug is null) and (slug is null) = (number is null))
);
-- load at start: everything an account still holds.
create index inventory_held_by_account on public.inventory (account_id, msg_id)
  where status in ('held', 'withdraw_requested', 'withdrawing');
-- the bot's /inventory and the web app: one owner's held items (owner null = unattributed).
create index inventory_held_by_owner on public.inventory (owner_id, account_id, msg_id)
  where status in ('held', 'withdraw_requested', 'withdrawing');
-- /stats and the web app's history: every item of one owner.
create index inventory_owner_status on public.inventory (owner_id, status);
-- the history of one collectible across deposits.
create index inventory_collectible on public.inventory (collectible_id)
  where collectible_id is not null;

-- The append-only ledger: one row per deposit and per status move.
create table public.transactions (
  id bigint generated always as identity primary key,
  idempotency_key text not null unique,
  account_id bigint not null,
  msg_id integer not null,
  owner_id bigint,
  kind text not null check (kind in ('deposit', 'withdraw_requested', 'withdraw_cancelled',
    'withdraw_started', 'withdraw_failed', 'withdrawn', 'converted', 'refunded', 'upgraded',
    'gone', 'assigned')),
  stars bigint not null,
  -- Unix seconds of the event.
  at bigint not null,
  created_at timestamptz not null default now()
);
create index transactions_owner on public.transactions (owner_id, id);
create index transactions_item on public.transactions (account_id, msg_id);
create trigger transactions_append_only before update or delete on public.transactions
  for each row execute function giftd_private.forbid_ledger_change();
create trigger transactions_no_truncate before truncate on public.transactions
  for each statement execute function giftd_private.forbid_ledger_change();

-- Withdrawal requests: requested by the bot, claimed by one withdrawer, then completed.
create table public.withdrawals (
  id bigint generated always as identity primary key,
  account_id bigint not null,
  msg_id integer not null,
  owner_id bigint not null,
  status text not null default 'requested'
    check (status in ('requested', 'claimed', 'transferred', 'failed', 'cancelled')),
  worker_id text,
  reason text,
  requested_at timestamptz not null default now(),
  claimed_at timestamptz,
  completed_at timestamptz,
  foreign key (account_id, msg_id) references public.inventory (account_id, msg_id)
);
-- at most one open request per item.
create unique index withdrawals_open_per_item on public.withdrawals (account_id, msg_id)
  where status in ('requested', 'claimed');
-- the claim queue of each deposit account, oldest first.
create index withdrawals_queue on public.withdrawals (account_id, id) where status = 'requested';
create index withdrawals_owner on public.withdrawals (owner_id, id);

-- Single-use tokens that link a Telegram user to a web account. Only the SHA-256 of a token is
-- kept, so a copy of the table cannot be replayed.
create table public.link_tokens (
  token_hash text primary key,
  user_id bigint not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz
);
create index link_tokens_user on public.link_tokens (user_id);
create index link_tokens_expiry on public.link_tokens (expires_at) where used_at is null;

-- One row per reconciliation pass.
create table public.sync_logs (
  id bigint generated always as identity primary key,
  account_id bigint not null,
  started_at bigint not null,
  finished_at bigint not null,
  items_seen integer not null,
  items_new integer not null,
  items_changed integer not null,
  error text,
  created_at timestamptz not null default now()
);
create index sync_logs_account on public.sync_logs (account_id, id desc);

-- ---------------------------------------------------------------------------------------------
-- Privileges and row level security
-- ---------------------------------------------------------------------------------------------

alter table public.schema_version enable row level security;
alter table public.users enable row level security;
alter table public.gifts enable row level security;
alter table public.inventory enable row level security;
alter table public.transactions enable row level security;
alter table public.withdrawals enable row level security;
alter table public.link_tokens enable row level security;
alter table public.sync_logs enable row level security;

revoke all on public.schema_version, public.users, public.gifts, public.inventory,
  public.transactions, public.withdrawals, public.link_tokens, public.sync_logs
  from public, anon, authenticated;
grant select, insert, update, delete on public.schema_version, public.users, public.gifts,
  public.inventory, public.withdrawals, public.link_tokens, public.sync_logs to service_role;
grant select, insert on public.transactions to service_role;

-- The catalogue is public information.
grant select on public.gifts to anon, authenticated;
create policy gifts_read on public.gifts for select to anon, authenticated using (true);

-- A player reads their own rows, nothing else. Realtime (Postgres Changes) honours these too.
grant select on public.users, public.inventory, public.transactions, public.withdrawals
  to authenticated;
create policy users_own on public.users for select to authenticated
  using (id = giftd_private.jwt_telegram_id());
create policy inventory_own on public.inventory for select to authenticated
  using (owner_id = giftd_private.jwt_telegram_id());
create policy transactions_own on public.transactions for select to authenticated
  using (owner_id = giftd_private.jwt_telegram_id());
create policy withdrawals_own on public.withdrawals for select to authenticated
  using (owner_id = giftd_private.jwt_telegram_id());
-- schema_version, link_tokens, sync_logs: no policy, so only service_role (bypassrls) sees them.

-- ---------------------------------------------------------------------------------------------
-- Functions giftd calls (RPC). Security invoker: they run as service_role.
-- ---------------------------------------------------------------------------------------------

create function public.giftd_schema_version() returns integer
language sql stable set search_path = '' as $$
  select version from public.schema_version
$$;

-- Proves the caller may write (used by `giftd check`).
create function public.giftd_check_write() returns integer
language sql volatile set search_path = '' as $$
  update public.schema_version set checked_at = now() returning version
$$;

-- Records a batch of detected items and status changes in one transaction.
-- p_batch: {users: [...], gifts: [...], items: [...], ledger: [...], changes: [...]} as built by
-- src/store/supabase.rs. Items already known are left alone (a replay changes nothing, an old
-- batch never moves an item back). A change to the status an item already has is a no-op; an
-- illegal change or one for an unknown item is refused and reported, never applied.
create function public.giftd_apply_batch(p_batch jsonb) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_distinct integer;
  v_new integer;
  v_applied integer := 0;
  v_unchanged integer := 0;
  v_refused jsonb := '[]'::jsonb;
  c record;
  v_cur record;
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
  on conflict (account_id, msg_id) do nothing;
  get diagnostics v_new = row_count;
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
      -- A request nobody has claimed yet cannot be served any more.
      update public.withdrawals set status = 'cancelled', completed_at = now(),
        reason = 'item left the account: ' || c.status
      where account_id = c.account_id and msg_id = c.msg_id and status = 'requested';
      v_applied := v_applied + 1;
    end if;
  end loop;

  return jsonb_build_object('items_new', v_new, 'items_known', v_distinct - v_new,
    'changes_applied', v_applied, 'changes_unchanged', v_unchanged, 'refused', v_refused);
end
$$;

-- Keyset-paged: everything an account holds, by msg_id after p_after_msg_id.
create function public.giftd_load_items(p_account_id bigint, p_after_msg_id integer,
  p_limit integer) returns setof public.inventory
language sql stable set search_path = '' as $$
  select * from public.inventory
  where account_id = p_account_id and msg_id > p_after_msg_id
    and status in ('held', 'withdraw_requested', 'withdrawing')
  order by msg_id
  limit p_limit
$$;

-- Keyset-paged: one owner's held items.
create function public.giftd_list_owner(p_owner_id bigint, p_after_account_id bigint,
  p_after_msg_id integer, p_limit integer) returns setof public.inventory
language sql stable set search_path = '' as $$
  select * from public.inventory i
  where i.owner_id = p_owner_id
    and (i.account_id, i.msg_id) > (p_after_account_id, p_after_msg_id)
    and i.status in ('held', 'withdraw_requested', 'withdrawing')
  order by i.account_id, i.msg_id
  limit p_limit
$$;

-- Keyset-paged: the held items nobody is credited with (anonymous gifts).
create function public.giftd_list_unattributed(p_after_account_id bigint,
  p_after_msg_id integer, p_limit integer) returns setof public.inventory
language sql stable set search_path = '' as $$
  select * from public.inventory i
  where i.owner_id is null
    and (i.account_id, i.msg_id) > (p_after_account_id, p_after_msg_id)
    and i.status in ('held', 'withdraw_requested', 'withdrawing')
  order by i.account_id, i.msg_id
  limit p_limit
$$;

create function public.giftd_owner_stats(p_owner_id bigint) returns jsonb
language sql stable set search_path = '' as $$
  select jsonb_build_object(
    'held', count(*) filter (where status = 'held'),
    'held_stars', coalesce(sum(stars) filter (where status in ('held', 'withdraw_requested',
      'withdrawing')), 0),
    'withdraw_pending', count(*) filter (where status in ('withdraw_requested', 'withdrawing')),
    'withdrawn', count(*) filter (where status = 'withdrawn'),
    'deposited', count(*))
  from public.inventory where owner_id = p_owner_id
$$;

-- Credits an anonymous item to a user (operator decision). Idempotent for the same user.
create function public.giftd_assign_owner(p_account_id bigint, p_msg_id integer,
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
  return jsonb_build_object('changed', true);
end
$$;

-- A player asks for an item back. Idempotent: asking again returns the open request.
create function public.giftd_create_withdrawal(p_account_id bigint, p_msg_id integer,
  p_owner_id bigint) returns jsonb
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
  if v_item.status = 'withdraw_requested' then
    select id into v_id from public.withdrawals
    where account_id = p_account_id and msg_id = p_msg_id and status = 'requested';
    return jsonb_build_object('id', v_id, 'created', false);
  end if;
  if v_item.status <> 'held' then
    return jsonb_build_object('error', 'not_held', 'status', v_item.status,
      'upgraded_into', v_item.upgraded_into);
  end if;
  insert into public.withdrawals (account_id, msg_id, owner_id)
  values (p_account_id, p_msg_id, p_owner_id) returning id into v_id;
  update public.inventory set status = 'withdraw_requested', updated_at = now()
  where account_id = p_account_id and msg_id = p_msg_id;
  insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind, stars, at)
  values ('withdraw_requested:' || p_account_id || '/' || p_msg_id || ':' || v_id, p_account_id,
    p_msg_id, p_owner_id, 'withdraw_requested', v_item.stars, extract(epoch from now())::bigint);
  return jsonb_build_object('id', v_id, 'created', true);
end
$$;

-- Hands the oldest open request of a deposit account to one withdrawer. Concurrent claimers
-- skip each other's rows, so no request is ever handed out twice. Null when none is open.
create function public.giftd_claim_withdrawal(p_account_id bigint, p_worker_id text)
returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  w record;
  v_stars bigint;
begin
  select * into w from public.withdrawals
  where account_id = p_account_id and status = 'requested'
  order by id limit 1 for update skip locked;
  if not found then
    return null;
  end if;
  update public.withdrawals set status = 'claimed', worker_id = p_worker_id, claimed_at = now()
  where id = w.id;
  update public.inventory set status = 'withdrawing', updated_at = now()
  where account_id = w.account_id and msg_id = w.msg_id and status = 'withdraw_requested'
  returning stars into v_stars;
  if found then
    insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind,
      stars, at)
    values ('withdraw_started:' || w.account_id || '/' || w.msg_id || ':' || w.id, w.account_id,
      w.msg_id, w.owner_id, 'withdraw_started', v_stars, extract(epoch from now())::bigint)
    on conflict (idempotency_key) do nothing;
  end if;
  return jsonb_build_object('id', w.id, 'account_id', w.account_id, 'msg_id', w.msg_id,
    'owner_id', w.owner_id, 'requested_at', extract(epoch from w.requested_at)::bigint);
end
$$;

-- Records how a claimed withdrawal ended. Replaying the same outcome is a no-op. p_reason ''
-- means none (RPC arguments are never sent as null).
create function public.giftd_complete_withdrawal(p_id bigint, p_transferred boolean,
  p_reason text) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  w record;
  v_item record;
  v_new text := case when p_transferred then 'transferred' else 'failed' end;
begin
  select * into w from public.withdrawals where id = p_id for update;
  if not found then
    return jsonb_build_object('error', 'not_found');
  end if;
  if w.status = v_new then
    return jsonb_build_object('changed', false);
  end if;
  if w.status <> 'claimed' then
    return jsonb_build_object('error', 'not_claimed', 'status', w.status);
  end if;
  update public.withdrawals set status = v_new, reason = nullif(p_reason, ''),
    completed_at = now()
  where id = p_id;
  select * into v_item from public.inventory
  where account_id = w.account_id and msg_id = w.msg_id for update;
  if v_item.status = 'withdrawing' then
    update public.inventory set status = case when p_transferred then 'withdrawn' else 'held' end,
      updated_at = now()
    where account_id = w.account_id and msg_id = w.msg_id;
    insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind, stars,
      at)
    values (case when p_transferred
        then 'withdrawn:' || w.account_id || '/' || w.msg_id
        else 'withdraw_failed:' || w.account_id || '/' || w.msg_id || ':' || w.id end,
      w.account_id, w.msg_id, w.owner_id,
      case when p_transferred then 'withdrawn' else 'withdraw_failed' end,
      v_item.stars, extract(epoch from now())::bigint)
    on conflict (idempotency_key) do nothing;
  end if;
  return jsonb_build_object('changed', true);
end
$$;

create function public.giftd_create_link_token(p_token_hash text, p_user_id bigint,
  p_ttl_ms bigint) returns bigint
language sql volatile set search_path = '' as $$
  insert into public.link_tokens (token_hash, user_id, expires_at)
  values (p_token_hash, p_user_id, now() + p_ttl_ms * interval '1 millisecond')
  returning (extract(epoch from expires_at) * 1000)::bigint
$$;

-- Single use: the first consumer gets the user id, later ones `used`.
create function public.giftd_consume_link_token(p_token_hash text) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  t record;
begin
  select * into t from public.link_tokens where token_hash = p_token_hash for update;
  if not found then
    return jsonb_build_object('error', 'unknown');
  end if;
  if t.used_at is not null then
    return jsonb_build_object('error', 'used');
  end if;
  if t.expires_at <= now() then
    return jsonb_build_object('error', 'expired');
  end if;
  update public.link_tokens set used_at = now() where token_hash = p_token_hash;
  return jsonb_build_object('user_id', t.user_id);
end
$$;

create function public.giftd_append_sync_log(p_log jsonb) returns bigint
language sql volatile set search_path = '' as $$
  insert into public.sync_logs (account_id, started_at, finished_at, items_seen, items_new,
    items_changed, error)
  values ((p_log ->> 'account_id')::bigint, (p_log ->> 'started_at')::bigint,
    (p_log ->> 'finished_at')::bigint, (p_log ->> 'items_seen')::integer,
    (p_log ->> 'items_new')::integer, (p_log ->> 'items_changed')::integer, p_log ->> 'error')
  returning id
$$;

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

-- ---------------------------------------------------------------------------------------------
-- Realtime: the web app gets inventory changes pushed (Postgres Changes honour the policies).
-- ---------------------------------------------------------------------------------------------

-- Full old rows in change events, so a subscriber sees which status an item left.
alter table public.inventory replica identity full;

do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  if not exists (select 1 from pg_publication_tables
                 where pubname = 'supabase_realtime' and schemaname = 'public'
                   and tablename = 'inventory') then
    alter publication supabase_realtime add table public.inventory;
  end if;
end
$$;
