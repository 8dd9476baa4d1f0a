-- giftd schema version 3: the withdrawal state machine (src/withdraw/machine.rs).
--
-- Applied after 20261201190000_giftd_attribution.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- A request moves requested -> claimed -> sending -> sent | failed | unknown, and can wait
-- (`waiting`: too early, no Stars; `approval`: above the operator's caps, or retries spent).
-- `sending` is written before any Telegram call that moves a gift or spends Stars; an outcome
-- giftd does not know is `unknown` until Telegram is looked at. Every move is one call of
-- `giftd_move_withdrawal`, a compare-and-set on the request's state, worker and attempt, with
-- the item and a ledger entry in the same transaction.

-- Requests: the new states and what the worker records.
alter table public.withdrawals drop constraint withdrawals_status_check;
update public.withdrawals set status = 'sent' where status = 'transferred';
alter table public.withdrawals add constraint withdrawals_status_check check (status in (
  'requested', 'approval', 'waiting', 'claimed', 'sending', 'unknown', 'sent', 'failed',
  'cancelled'));
alter table public.withdrawals
  add column kind text not null default 'transfer' check (kind in ('transfer', 'resend')),
  add column attempt integer not null default 0,
  add column lease_until timestamptz,
  add column not_before timestamptz,
  add column wait_reason text,
  add column fee_stars bigint,
  add column approved_stars bigint,
  add column form_id bigint,
  add column sending_at timestamptz;
update public.withdrawals w set kind = 'resend'
from public.inventory i
where i.account_id = w.account_id and i.msg_id = w.msg_id and i.collectible_id is null;

drop index public.withdrawals_open_per_item;
create unique index withdrawals_open_per_item on public.withdrawals (account_id, msg_id)
  where status in ('requested', 'approval', 'waiting', 'claimed', 'sending', 'unknown');
drop index public.withdrawals_queue;
create index withdrawals_queue on public.withdrawals (account_id, id)
  where status in ('requested', 'waiting');
create index withdrawals_open on public.withdrawals (account_id, status)
  where status in ('approval', 'claimed', 'sending', 'unknown');

-- A regular gift resent to its player stays in the deposit account, kept by the house: giftd
-- loads it at start so no reconciliation credits it again.
alter table public.inventory add column kept_by_house boolean not null default false;

-- The ledger kinds of the new steps.
alter table public.transactions drop constraint transactions_kind_check;
alter table public.transactions add constraint transactions_kind_check check (kind in (
  'deposit', 'withdraw_requested', 'withdraw_cancelled', 'withdraw_started', 'withdraw_sending',
  'withdraw_unknown', 'withdraw_deferred', 'withdraw_approved', 'withdraw_failed', 'withdrawn',
  'converted', 'refunded', 'upgraded', 'gone', 'assigned', 'attributed'));

-- Mirror of `gift::Status::transition`: a transfer in progress may go back to the queue.
create or replace function giftd_private.legal_transition(p_from text, p_to text)
returns boolean
language sql immutable set search_path = '' as $$
  select (p_from, p_to) in (
      ('held', 'withdraw_requested'),
      ('withdraw_requested', 'withdrawing'), ('withdraw_requested', 'held'),
      ('withdrawing', 'withdrawn'), ('withdrawing', 'held'),
      ('withdrawing', 'withdraw_requested'))
    or (p_from in ('held', 'withdraw_requested', 'withdrawing')
        and p_to in ('converted', 'refunded', 'upgraded', 'gone'))
$$;

-- What giftd reads back of a request.
create function giftd_private.withdrawal_json(w public.withdrawals) returns jsonb
language sql stable set search_path = '' as $$
  select jsonb_build_object(
    'id', w.id, 'account_id', w.account_id, 'msg_id', w.msg_id, 'owner_id', w.owner_id,
    'status', w.status, 'kind', w.kind, 'attempt', w.attempt, 'worker_id', w.worker_id,
    'lease_until_ms', (extract(epoch from w.lease_until) * 1000)::bigint,
    'not_before_ms', (extract(epoch from w.not_before) * 1000)::bigint,
    'wait_reason', w.wait_reason, 'fee_stars', w.fee_stars, 'approved_stars', w.approved_stars,
    'form_id', w.form_id, 'reason', w.reason,
    'requested_at', extract(epoch from w.requested_at)::bigint,
    'sending_at_ms', (extract(epoch from w.sending_at) * 1000)::bigint)
$$;

create function giftd_private.ms_to_ts(p_ms bigint) returns timestamptz
language sql immutable set search_path = '' as $$
  select case when p_ms is null then null else to_timestamp(p_ms / 1000.0) end
$$;

-- A player asks for an item back (giftd for the bot and the CLI, as service_role). Idempotent:
-- asking again returns the open request.
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
  return jsonb_build_object('id', v_id, 'created', true);
end
$$;

-- The operator's web app: a signed-in player asks for one of their own held items. The owner
-- is the caller's `telegram_id` claim, never an argument, so a player can only ask for their
-- own items; anon has no grant.
create function public.request_withdrawal(p_account_id bigint, p_msg_id integer)
returns jsonb
language plpgsql volatile security definer set search_path = '' as $$
declare
  v_user bigint := giftd_private.jwt_telegram_id();
begin
  if v_user is null then
    return jsonb_build_object('error', 'not_signed_in');
  end if;
  return public.giftd_create_withdrawal(p_account_id, p_msg_id, v_user);
end
$$;
revoke all on function public.request_withdrawal(bigint, integer) from public, anon;
grant execute on function public.request_withdrawal(bigint, integer) to authenticated,
  service_role;

-- Hands the oldest claimable request of a deposit account (requested, or waiting past its
-- not_before) to one worker for p_lease_ms and counts the attempt. Concurrent claimers skip
-- each other's rows. Null when none is claimable.
drop function public.giftd_claim_withdrawal(bigint, text);
create function public.giftd_claim_withdrawal(p_account_id bigint, p_worker_id text,
  p_lease_ms bigint) returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  w public.withdrawals;
  v_stars bigint;
begin
  select * into w from public.withdrawals
  where account_id = p_account_id and status in ('requested', 'waiting')
    and coalesce(not_before, '-infinity') <= now()
  order by id limit 1 for update skip locked;
  if not found then
    return null;
  end if;
  update public.withdrawals set status = 'claimed', worker_id = p_worker_id,
    claimed_at = now(), lease_until = now() + p_lease_ms * interval '1 millisecond',
    attempt = attempt + 1
  where id = w.id
  returning * into w;
  update public.inventory set status = 'withdrawing', updated_at = now()
  where account_id = w.account_id and msg_id = w.msg_id and status = 'withdraw_requested'
  returning stars into v_stars;
  if found then
    insert into public.transactions (idempotency_key, account_id, msg_id, owner_id, kind,
      stars, at)
    values ('withdraw_started:' || w.account_id || '/' || w.msg_id || ':' || w.id || ':'
        || w.attempt, w.account_id, w.msg_id, w.owner_id, 'withdraw_started', v_stars,
      extract(epoch from now())::bigint)
    on conflict (idempotency_key) do nothing;
  end if;
  return giftd_private.withdrawal_json(w);
end
$$;

-- One move of the state machine, from `WithdrawalMove` (src/withdraw/machine.rs): refused
-- unless the request is in one of `from` and, when given, held by `worker` at `attempt`. A
-- move to where the request already is (same claim) changes nothing.
create function giftd_private.move_withdrawal(p_move jsonb) returns jsonb
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
  select * into w from public.withdrawals where id = w.id;
  return jsonb_build_object('row', giftd_private.withdrawal_json(w));
end
$$;

create function public.giftd_move_withdrawal(p_move jsonb) returns jsonb
language sql volatile set search_path = '' as $$
  select giftd_private.move_withdrawal(p_move)
$$;

-- Requests of an account whose worker's lease ran out: a claim goes back to the queue (nothing
-- was sent), a send becomes unknown (something may have been).
create function public.giftd_rescue_withdrawals(p_account_id bigint) returns bigint
language plpgsql volatile set search_path = '' as $$
declare
  w public.withdrawals;
  v_n bigint := 0;
begin
  for w in
    select * from public.withdrawals
    where account_id = p_account_id and status in ('claimed', 'sending')
      and coalesce(lease_until, '-infinity') < now()
    order by id for update skip locked
  loop
    perform giftd_private.move_withdrawal(case when w.status = 'sending'
      then jsonb_build_object('id', w.id, 'from', jsonb_build_array('sending'), 'to', 'unknown',
        'item_to', 'withdrawing', 'ledger_kind', 'withdraw_unknown', 'worker', w.worker_id,
        'attempt', w.attempt, 'mark_sending', false, 'reset_attempts', false,
        'kept_by_house', false,
        'reason', 'the worker''s lease ran out while it was sending')
      else jsonb_build_object('id', w.id, 'from', jsonb_build_array('claimed'),
        'to', 'requested', 'item_to', 'withdraw_requested', 'ledger_kind', 'withdraw_deferred',
        'worker', w.worker_id, 'attempt', w.attempt, 'set_worker', null,
        'mark_sending', false, 'reset_attempts', false, 'kept_by_house', false,
        'reason', 'the worker''s lease ran out before it sent anything')
      end);
    v_n := v_n + 1;
  end loop;
  return v_n;
end
$$;

create function public.giftd_get_withdrawal(p_id bigint) returns jsonb
language sql stable set search_path = '' as $$
  select giftd_private.withdrawal_json(w) from public.withdrawals w where w.id = p_id
$$;

-- Newest first. i64::MIN for an account or owner, '' for states, 0 for the limit: any.
create function public.giftd_list_withdrawals(p_account_id bigint, p_owner_id bigint,
  p_states text, p_limit bigint) returns jsonb
language sql stable set search_path = '' as $$
  select coalesce(jsonb_agg(giftd_private.withdrawal_json(w) order by w.id desc), '[]')
  from (
    select * from public.withdrawals
    where (p_account_id = -9223372036854775808 or account_id = p_account_id)
      and (p_owner_id = -9223372036854775808 or owner_id = p_owner_id)
      and (p_states = '' or status = any (string_to_array(p_states, ',')))
    order by id desc
    limit case when p_limit = 0 then null else p_limit end
  ) w
$$;

-- What giftd loads at start: what the account holds, and the resent gifts kept by the house.
create or replace function public.giftd_load_items(p_account_id bigint, p_after_msg_id integer,
  p_limit integer) returns setof public.inventory
language sql stable set search_path = '' as $$
  select * from public.inventory
  where account_id = p_account_id and msg_id > p_after_msg_id
    and (status in ('held', 'withdraw_requested', 'withdrawing')
      or (status = 'withdrawn' and kept_by_house))
  order by msg_id
  limit p_limit
$$;

revoke all on function giftd_private.withdrawal_json(public.withdrawals),
  giftd_private.ms_to_ts(bigint), giftd_private.move_withdrawal(jsonb) from public;
grant execute on function giftd_private.withdrawal_json(public.withdrawals),
  giftd_private.ms_to_ts(bigint), giftd_private.move_withdrawal(jsonb) to service_role;

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
from (values (3, '20261201200000_giftd_withdrawals')) as v (version, migration);
