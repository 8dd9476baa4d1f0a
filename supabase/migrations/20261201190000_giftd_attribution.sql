-- giftd schema version 2: senders Telegram names later, and upgrades that point both ways.
--
-- Applied after 20261121090000_giftd_init.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- - The ledger gains the kind `attributed`: an item first recorded without a sender (the update
--   path saw none) is credited to the sender a later poll or reconciliation names, or that the
--   regular gift it was upgraded from had. Only an item with no owner: an operator's assignment
--   is never overwritten.
-- - `giftd_apply_batch` takes `attributions`, and points a collectible made by an upgrade back at
--   the gift it came from (`upgraded_from`), whichever of the two a batch writes first. Rows
--   written before this migration are fixed below.
-- - A `sync_logs` row is named by its pass (`pass_id`), and reconciliation passes travel in
--   `giftd_apply_batch` with the inventory's changes: a pass that ran while the database was
--   down is written when it is back, once, however often the batch is replayed.

alter table public.transactions drop constraint transactions_kind_check;
alter table public.transactions add constraint transactions_kind_check check (kind in (
  'deposit', 'withdraw_requested', 'withdraw_cancelled', 'withdraw_started', 'withdraw_failed',
  'withdrawn', 'converted', 'refunded', 'upgraded', 'gone', 'assigned', 'attributed'));

alter table public.sync_logs add column pass_id text unique;

create or replace function public.giftd_append_sync_log(p_log jsonb) returns bigint
language sql volatile set search_path = '' as $$
  insert into public.sync_logs (pass_id, account_id, started_at, finished_at, items_seen,
    items_new, items_changed, error)
  values (p_log ->> 'pass_id', (p_log ->> 'account_id')::bigint,
    (p_log ->> 'started_at')::bigint, (p_log ->> 'finished_at')::bigint,
    (p_log ->> 'items_seen')::integer, (p_log ->> 'items_new')::integer,
    (p_log ->> 'items_changed')::integer, p_log ->> 'error')
  on conflict (pass_id) do nothing
  returning id
$$;

-- What an upgraded gift became, looked up by every batch that records new items: without this
-- index each batch scanned the whole inventory (found by the daemon benchmark: 1,100 gifts/s).
create index inventory_upgraded_into on public.inventory (account_id, upgraded_into)
  where upgraded_into is not null;

update public.inventory n set upgraded_from = o.msg_id
from public.inventory o
where n.upgraded_from is null and o.account_id = n.account_id and o.upgraded_into = n.msg_id
  and o.status = 'upgraded';

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
      where account_id = c.account_id and msg_id = c.msg_id
        and status in ('requested', 'approval', 'waiting');
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

update public.schema_version set version = v.version, migration = v.migration, applied_at = now()
from (values (2, '20261201190000_giftd_attribution')) as v (version, migration);
