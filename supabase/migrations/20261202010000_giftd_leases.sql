-- giftd schema version 5: leases and fencing, so several giftd instances can share one
-- database with exactly one acting for each deposit account (and one running the bot).
--
-- Applied after 20261201200000_giftd_withdrawals.sql (and 20261202000000_giftd_bot.sql where
-- present), by `supabase db push` or `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema`
-- prints it.
--
-- A lease is a row per name (`account:<deposit account id>`, `bot`): its holder (an instance
-- id), its epoch and its expiry by the database's clock. PostgREST runs each request in its own
-- transaction, so session advisory locks cannot be held through it: the lease is taken and
-- renewed by RPC, as River's leader election does. Taking a free, expired or released lease
-- starts a new term (epoch + 1); the holder taking again or renewing keeps its epoch.
--
-- Fencing: the writes only an account's active instance makes (batches of detected changes,
-- withdrawal claims, rescues and the worker's moves) go through the `giftd_fenced_*` functions
-- with the epoch they were decided in. Each locks the account's lease row (FOR SHARE, in
-- account order) and refuses the whole call, writing nothing, when the epoch is not the
-- lease's: a taker's UPDATE of the lease waits for writes in flight and every later write of
-- the old term is refused. A write without an epoch (a single instance without leases) is
-- refused while another instance holds a live lease on the account. The old unfenced functions
-- stay for older callers; this giftd uses the fenced ones.

create table public.leases (
  name text primary key check (length(name) between 1 and 200),
  holder text not null check (length(holder) between 1 and 200),
  epoch bigint not null check (epoch >= 0),
  expires_at timestamptz not null,
  taken_at timestamptz not null default now(),
  renewed_at timestamptz not null default now()
);
alter table public.leases enable row level security;
revoke all on public.leases from public, anon, authenticated;
grant select, insert, update, delete on public.leases to service_role;
-- No policy: only service_role (bypassrls) sees leases.

-- The term of the account's lease a request was claimed in: the next holder takes back the
-- requests of older terms at once instead of waiting for the worker's claim to run out.
alter table public.withdrawals add column epoch bigint;

create function giftd_private.lease_json(l public.leases) returns jsonb
language sql stable set search_path = '' as $$
  select case when l.name is null then null else jsonb_build_object(
    'name', l.name, 'holder', l.holder, 'epoch', l.epoch,
    'expires_at_ms', (extract(epoch from l.expires_at) * 1000)::bigint,
    'db_now_ms', (extract(epoch from now()) * 1000)::bigint) end
$$;

-- Takes the lease for p_holder for p_ttl_ms: free, expired or released -> a new term (epoch
-- + 1); already p_holder's and live -> extended, same epoch. Concurrent takers queue on the row
-- lock; the first wins, the others see its live term and are refused.
create function public.giftd_take_lease(p_name text, p_holder text, p_ttl_ms bigint)
returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  l public.leases;
begin
  insert into public.leases (name, holder, epoch, expires_at)
  values (p_name, p_holder, 0, '-infinity')
  on conflict (name) do nothing;
  select * into l from public.leases where name = p_name for update;
  if l.expires_at > now() and l.holder <> p_holder then
    return jsonb_build_object('held', false, 'lease', giftd_private.lease_json(l));
  end if;
  if l.expires_at > now() then
    update public.leases set expires_at = now() + p_ttl_ms * interval '1 millisecond',
      renewed_at = now()
    where name = p_name
    returning * into l;
  else
    update public.leases set holder = p_holder, epoch = l.epoch + 1,
      expires_at = now() + p_ttl_ms * interval '1 millisecond', taken_at = now(),
      renewed_at = now()
    where name = p_name
    returning * into l;
  end if;
  return jsonb_build_object('held', true, 'lease', giftd_private.lease_json(l));
end
$$;

-- Extends p_holder's term p_epoch. Refused when the term is over (another holder or epoch).
create function public.giftd_renew_lease(p_name text, p_holder text, p_epoch bigint,
  p_ttl_ms bigint) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  l public.leases;
begin
  select * into l from public.leases where name = p_name for update;
  if not found then
    return jsonb_build_object('held', false, 'lease', null);
  end if;
  if l.holder <> p_holder or l.epoch <> p_epoch then
    return jsonb_build_object('held', false, 'lease', giftd_private.lease_json(l));
  end if;
  update public.leases set expires_at = now() + p_ttl_ms * interval '1 millisecond',
    renewed_at = now()
  where name = p_name
  returning * into l;
  return jsonb_build_object('held', true, 'lease', giftd_private.lease_json(l));
end
$$;

-- Ends p_holder's term p_epoch now, so another instance takes the lease at once.
create function public.giftd_release_lease(p_name text, p_holder text, p_epoch bigint)
returns boolean
language plpgsql volatile set search_path = '' as $$
declare
  v_n integer;
begin
  update public.leases set expires_at = least(expires_at, now())
  where name = p_name and holder = p_holder and epoch = p_epoch;
  get diagnostics v_n = row_count;
  return v_n > 0;
end
$$;

create function public.giftd_get_lease(p_name text) returns jsonb
language sql stable set search_path = '' as $$
  select giftd_private.lease_json(l) from public.leases l where l.name = p_name
$$;

-- Null when a write for p_account_id may go ahead, else the refusal. Locks the lease row
-- FOR SHARE until the caller's transaction ends, so a take cannot slip in between.
-- p_epoch null: an unfenced write, refused only while someone holds a live lease.
create function giftd_private.check_fence(p_account_id bigint, p_epoch bigint) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  l public.leases;
begin
  select * into l from public.leases where name = 'account:' || p_account_id for share;
  if (p_epoch is not null and (not found or l.epoch <> p_epoch))
    or (p_epoch is null and found and l.expires_at > now()) then
    return jsonb_build_object('error', 'fenced', 'lease', 'account:' || p_account_id,
      'epoch', p_epoch, 'current', l.epoch);
  end if;
  return null;
end
$$;

-- giftd_apply_batch, fenced: p_epochs maps each account (as text) to the epoch the writer
-- holds; accounts the batch touches without an entry are written unfenced.
create function public.giftd_fenced_apply_batch(p_batch jsonb, p_epochs jsonb) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_account bigint;
  v_err jsonb;
begin
  for v_account in
    select distinct a from (
      select (x ->> 'account_id')::bigint as a
      from jsonb_array_elements(coalesce(p_batch -> 'items', '[]')) x
      union all
      select (x ->> 'account_id')::bigint
      from jsonb_array_elements(coalesce(p_batch -> 'changes', '[]')) x
      union all
      select (x ->> 'account_id')::bigint
      from jsonb_array_elements(coalesce(p_batch -> 'attributions', '[]')) x
      union all
      select (x ->> 'account_id')::bigint
      from jsonb_array_elements(coalesce(p_batch -> 'sync_logs', '[]')) x
    ) s
    order by a
  loop
    v_err := giftd_private.check_fence(v_account,
      (coalesce(p_epochs, '{}') ->> v_account::text)::bigint);
    if v_err is not null then
      return v_err;
    end if;
  end loop;
  return public.giftd_apply_batch(p_batch);
end
$$;

-- giftd_claim_withdrawal, fenced (p_epoch 0: unfenced); the request records the epoch.
create function public.giftd_fenced_claim_withdrawal(p_account_id bigint, p_worker_id text,
  p_lease_ms bigint, p_epoch bigint) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_err jsonb;
  v_row jsonb;
begin
  v_err := giftd_private.check_fence(p_account_id, nullif(p_epoch, 0));
  if v_err is not null then
    return v_err;
  end if;
  v_row := public.giftd_claim_withdrawal(p_account_id, p_worker_id, p_lease_ms);
  if v_row is not null and p_epoch <> 0 then
    update public.withdrawals set epoch = p_epoch where id = (v_row ->> 'id')::bigint;
  end if;
  return jsonb_build_object('row', v_row);
end
$$;

-- giftd_move_withdrawal, fenced when the move carries `epoch` (the worker's); an operator's
-- or a player's move carries none and is checked against the request's state only.
create function public.giftd_fenced_move_withdrawal(p_move jsonb) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_account bigint;
  v_err jsonb;
begin
  if p_move ? 'epoch' then
    select account_id into v_account from public.withdrawals
    where id = (p_move ->> 'id')::bigint;
    if found then
      v_err := giftd_private.check_fence(v_account, (p_move ->> 'epoch')::bigint);
      if v_err is not null then
        return v_err;
      end if;
    end if;
  end if;
  return public.giftd_move_withdrawal(p_move - 'epoch');
end
$$;

-- giftd_rescue_withdrawals, fenced (p_epoch 0: unfenced). With an epoch, requests claimed in
-- an older term are taken back too, whatever their claim's lease says.
create function public.giftd_fenced_rescue_withdrawals(p_account_id bigint, p_epoch bigint)
returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_err jsonb;
  v_n bigint;
  w public.withdrawals;
begin
  v_err := giftd_private.check_fence(p_account_id, nullif(p_epoch, 0));
  if v_err is not null then
    return v_err;
  end if;
  v_n := public.giftd_rescue_withdrawals(p_account_id);
  if p_epoch <> 0 then
    for w in
      select * from public.withdrawals
      where account_id = p_account_id and status in ('claimed', 'sending')
        and epoch is not null and epoch < p_epoch
      order by id for update skip locked
    loop
      perform giftd_private.move_withdrawal(case when w.status = 'sending'
        then jsonb_build_object('id', w.id, 'from', jsonb_build_array('sending'),
          'to', 'unknown', 'item_to', 'withdrawing', 'ledger_kind', 'withdraw_unknown',
          'worker', w.worker_id, 'attempt', w.attempt, 'mark_sending', false,
          'reset_attempts', false, 'kept_by_house', false,
          'reason', 'the instance that was sending it lost the deposit account''s lease')
        else jsonb_build_object('id', w.id, 'from', jsonb_build_array('claimed'),
          'to', 'requested', 'item_to', 'withdraw_requested',
          'ledger_kind', 'withdraw_deferred', 'worker', w.worker_id, 'attempt', w.attempt,
          'set_worker', null, 'mark_sending', false, 'reset_attempts', false,
          'kept_by_house', false,
          'reason', 'the instance that claimed it lost the deposit account''s lease before it '
            || 'sent anything')
        end);
      v_n := v_n + 1;
    end loop;
  end if;
  return jsonb_build_object('rescued', v_n);
end
$$;

revoke all on function giftd_private.lease_json(public.leases),
  giftd_private.check_fence(bigint, bigint) from public;
grant execute on function giftd_private.lease_json(public.leases),
  giftd_private.check_fence(bigint, bigint) to service_role;

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
from (values (5, '20261202010000_giftd_leases')) as v (version, migration);
