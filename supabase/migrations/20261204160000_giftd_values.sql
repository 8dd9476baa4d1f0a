-- giftd schema version 9: a collectible's worth, each figure in the unit Telegram gives it.
--
-- Applied after 20261202010000_giftd_leases.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- Telegram gives a collectible's value as an amount in the smallest units of an ISO 4217
-- currency (`starGiftUnique.value_amount`, `value_currency`) and in US cents
-- (`value_usd_amount`); a resale purchase made for the deposit account carries what the buyer
-- paid, in Stars (`starsAmount`) or TON in nano units (`starsTonAmount`). None of them is
-- converted into another: each is stored with its currency (`paid_currency`: 'XTR' for Stars,
-- 'TON').

alter table public.inventory
  add column if not exists value_amount bigint,
  add column if not exists value_currency text
    check (value_currency is null or value_currency ~ '^[A-Z]{3}$'),
  add column if not exists value_usd_cents bigint,
  add column if not exists paid_amount bigint,
  add column if not exists paid_currency text check (paid_currency in ('XTR', 'TON')),
  add constraint inventory_value_pair check ((value_amount is null) = (value_currency is null)),
  add constraint inventory_paid_pair check ((paid_amount is null) = (paid_currency is null));

-- giftd_fenced_apply_batch, then the values of the items the batch describes (new items only
-- get them: an item's worth is what Telegram said when it arrived). One transaction, like
-- every RPC; a fenced batch changes nothing.
create or replace function public.giftd_fenced_apply_batch_values(p_batch jsonb, p_epochs jsonb)
  returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  v_result jsonb;
begin
  v_result := public.giftd_fenced_apply_batch(p_batch, p_epochs);
  if v_result ->> 'error' = 'fenced' then
    return v_result;
  end if;
  update public.inventory i
  set value_amount = x.value_amount, value_currency = x.value_currency,
    value_usd_cents = x.value_usd_cents, paid_amount = x.paid_amount,
    paid_currency = x.paid_currency
  from jsonb_to_recordset(coalesce(p_batch -> 'items', '[]')) as x (account_id bigint,
    msg_id integer, value_amount bigint, value_currency text, value_usd_cents bigint,
    paid_amount bigint, paid_currency text)
  where i.account_id = x.account_id and i.msg_id = x.msg_id
    and (x.value_amount, x.value_usd_cents, x.paid_amount) is distinct from (null, null, null)
    and (i.value_amount, i.value_usd_cents, i.paid_amount) is not distinct from (null, null, null);
  return v_result;
end
$$;

-- Only giftd (service_role) may call the giftd_* functions.
revoke all on function public.giftd_fenced_apply_batch_values(jsonb, jsonb)
  from public, anon, authenticated;
grant execute on function public.giftd_fenced_apply_batch_values(jsonb, jsonb) to service_role;

update public.schema_version set version = v.version, migration = v.migration, applied_at = now()
from (values (9, '20261204160000_giftd_values')) as v (version, migration);
