-- giftd schema version 7: one operator's desk across instances, and withdrawal requests
-- announced the moment they are made.
--
-- Applied after 20261202010000_giftd_leases.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- 1. Requests are announced on the `giftd_withdrawals` channel (LISTEN/NOTIFY) when they
--    become `requested` (made by the web app's `request_withdrawal`, a command, a bot;
--    approved or retried by an operator). A giftd configured with `supabase.listen_url` wakes
--    its workers on it instead of waiting for their next poll. The payload is the deposit
--    account's id and nothing else: a notification only wakes workers, which read the queue as
--    on every poll. NOTIFY is delivered at commit, so no worker wakes before the row is visible.
-- 2. `account_balances`: the Stars balance each deposit account's serving instance last read
--    from Telegram, so any instance's desk can show it.
-- 3. `giftd_desk()`: every deposit account the store knows (items, a lease, requests or a
--    balance), with its items and their Stars, its lease, its balance and its queue.

create or replace function giftd_private.announce_withdrawal() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  if new.status = 'requested'
     and (tg_op = 'INSERT' or old.status is distinct from 'requested') then
    perform pg_notify('giftd_withdrawals', new.account_id::text);
  end if;
  return null;
end
$$;
revoke all on function giftd_private.announce_withdrawal() from public, anon, authenticated;

create or replace trigger withdrawals_announce after insert or update of status on public.withdrawals
  for each row execute function giftd_private.announce_withdrawal();

create table if not exists public.account_balances (
  account_id bigint primary key,
  stars bigint not null,
  read_at timestamptz not null default now()
);
alter table public.account_balances enable row level security;
revoke all on public.account_balances from public, anon, authenticated;
grant select, insert, update, delete on public.account_balances to service_role;
-- No policy: only service_role (bypassrls) sees balances.

create or replace function public.giftd_record_balance(p_account_id bigint, p_stars bigint)
  returns void
  language sql
  set search_path = ''
as $$
  insert into public.account_balances (account_id, stars, read_at)
  values (p_account_id, p_stars, now())
  on conflict (account_id) do update set stars = excluded.stars, read_at = excluded.read_at;
$$;

create or replace function public.giftd_desk() returns jsonb
  language sql
  stable
  set search_path = ''
as $$
  with accounts as (
    select account_id from public.inventory
      where status in ('held', 'withdraw_requested', 'withdrawing')
    union
    select substr(name, 9)::bigint from public.leases where name ~ '^account:-?[0-9]+$'
    union
    select account_id from public.withdrawals
      where status in ('requested', 'approval', 'waiting', 'claimed', 'sending', 'unknown')
    union
    select account_id from public.account_balances
  ), items as (
    select account_id, count(*) as n, sum(stars) as stars from public.inventory
      where status in ('held', 'withdraw_requested', 'withdrawing')
      group by account_id
  ), queue as (
    select account_id, jsonb_object_agg(status, n) as q from (
      select account_id, status, count(*) as n from public.withdrawals
        where status in ('requested', 'approval', 'waiting', 'claimed', 'sending', 'unknown')
        group by account_id, status) s
      group by account_id
  )
  select coalesce(jsonb_agg(jsonb_build_object(
      'account_id', a.account_id,
      'items', coalesce(i.n, 0),
      'stars', coalesce(i.stars, 0),
      'holder', l.holder,
      'epoch', l.epoch,
      'lease_expires_at_ms', (extract(epoch from l.expires_at) * 1000)::bigint,
      'db_now_ms', (extract(epoch from now()) * 1000)::bigint,
      'balance', b.stars,
      'balance_at_ms', (extract(epoch from b.read_at) * 1000)::bigint,
      'queue', coalesce(q.q, '{}'::jsonb)
    ) order by a.account_id), '[]'::jsonb)
  from accounts a
  left join items i on i.account_id = a.account_id
  left join public.leases l on l.name = 'account:' || a.account_id
  left join public.account_balances b on b.account_id = a.account_id
  left join queue q on q.account_id = a.account_id;
$$;

revoke all on function public.giftd_record_balance(bigint, bigint) from public, anon, authenticated;
grant execute on function public.giftd_record_balance(bigint, bigint) to service_role;
revoke all on function public.giftd_desk() from public, anon, authenticated;
grant execute on function public.giftd_desk() to service_role;

update public.schema_version set version = v.version, migration = v.migration, applied_at = now()
from (values (7, '20261204130000_giftd_desk')) as v (version, migration);
