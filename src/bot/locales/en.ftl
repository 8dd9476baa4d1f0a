# giftd companion bot, English. Every key here must exist in fr.ftl too (a unit test checks).

## Commands as registered with bots.setBotCommands

cmd-start = Who I am and how to deposit
cmd-inventory = Your gifts
cmd-withdraw = Get a gift back
cmd-stats = Your figures
cmd-help = The commands
cmd-language = The language I speak

## /start, /help

start =
    Hello! I am the gift desk: I keep the Star Gifts you deposit and send them back when you ask.
    To deposit, send a Star Gift to { $accounts }: it is credited to you within seconds and I tell you.
help =
    /inventory - your gifts, newest first
    /withdraw - get a gift back
    /stats - what you hold, deposited and withdrew
    /language - the language I speak
    /help - this list
help-admin = /admin - the operator's desk
short-help = I only understand commands: /inventory, /withdraw, /stats or /help.
slow-down = Slow down a little: wait a few seconds before the next command.

## /language

language-ask = Which language should I speak to you?
language-set = From now on I speak English to you, notifications included.
language-unsaved = I speak English to you now, but could not save it: send /language again later.

## /start <token>

link-linked = Done: your Telegram account is now linked to the web account { $label }.
link-expired = This link has expired. Ask the website for a new one.
link-used = This link was already used. If it was not you, ask the website for a new one.
link-unknown = This link is not valid. Open the link from the website again.
link-unavailable = Linking is not possible right now; try again in a minute.
link-ask = Link your Telegram account to the web account { $label }?
    That account will see your gifts, your history and your withdrawals, and can ask for withdrawals. Confirm only if you opened this link yourself from your own account on the website.
link-ask-replace = Your Telegram account is linked to the web account { $old }. Replace that link with { $label }?
    { $old } loses access to your gifts and sees that its link was replaced.
link-cancelled = Nothing was linked.
link-stale = This question has expired. Open the link from the website again.
btn-link = ✅ Link
btn-replace = Replace the link

## Items

gift-untitled = Gift { $id }
item-line = { $n }. { $title }{ $number ->
        [none] {""}
       *[other] {" "}#{ $number }
    } · { $stars } ⭐{ $value }{ $state ->
        [withdrawing] {" "}(being withdrawn)
       *[held] {""}
    }
btn-prev = ◀ Back
btn-next = Next ▶
btn-withdraw = Withdraw { $n }

## /inventory

inv-empty = You hold no gifts yet. Send a Star Gift to { $accounts } to deposit one.
inv-header = Your gifts: { $count } worth { $stars } ⭐ (page { $page } of { $pages })

## /withdraw

wd-empty = You have nothing to withdraw right now.
wd-header = Which gift do you want back? (page { $page } of { $pages })
confirm-title = Withdraw { $title }{ $number ->
        [none] {""}
       *[other] {" "}#{ $number }
    } ({ $stars } ⭐)?
plan-free = It is transferred to your account for free.
plan-fee = Telegram charges { $fee } ⭐ to transfer it; the desk pays.
plan-wait = Telegram locks this gift until { $until } UTC: it is sent then.
plan-resend = A regular gift cannot be moved: the same gift is bought again and sent to you.
plan-refuse = Regular gifts cannot be withdrawn here, only collectibles.
plan-busy = This gift is already being withdrawn.
plan-gone = This gift is no longer in your inventory.
btn-confirm = ✅ Confirm
btn-cancel = Cancel
btn-cancel-request = Cancel the withdrawal
wd-requested = Withdrawal { $id } queued: { $title }. I will tell you when it is sent.
wd-cancelled = Withdrawal cancelled: the gift is in your inventory again.
wd-dismissed = Nothing was changed.
wd-too-late = Too late to cancel: the gift is being sent.
wd-error = Your request could not be recorded; try again in a minute.

## Button answers

toast-not-yours = This is not yours.
toast-stale = This button is out of date: send the command again.
toast-done = Done.

## /stats

stats =
    You hold { $held } gifts worth { $stars } ⭐.
    Deposited so far: { $deposited }. Withdrawn so far: { $withdrawn }.
    Withdrawals pending: { $pending }.
stats-unavailable = Your figures cannot be read right now; try again in a minute.

## /admin (operators)

admin-header = Operator's desk
admin-account = Account { $account }: { $items } gifts worth { $stars } ⭐, Stars balance { $balance }
admin-balance-unknown = not read yet
admin-queue = Queue: { $approval } awaiting approval, { $stars } blocked on Stars, { $unknown } unknown.
admin-request = #{ $id } { $title } for { $owner }: { $state }
admin-unattributed = Unattributed gifts: { $count }
admin-unattributed-line = { $n }. { $title } · { $stars } ⭐ ({ $key })
btn-approve = Approve #{ $id } · { $fee } ⭐
btn-admin-cancel = Cancel #{ $id }
btn-assign = Assign { $n }
btn-refresh = Refresh
assign-prompt = Reply with the user id or @username to credit { $title } ({ $key }) to.
assign-done = { $key } is now credited to { $user }.
assign-bad = Send a numeric user id or an @username.
assign-unknown-user = No user { $name } could be found; send the numeric user id.
assign-refused = Not assigned: { $key } is no longer unattributed.
admin-moved = Request { $id } is now { $state }.
admin-refused = Request { $id } was not changed: it is { $state } now.
admin-fee-changed = Request { $id } was not approved: its fee is { $fee } ⭐ now, not what the desk showed. Look again.
admin-error = The store did not answer; try again in a minute.

## Notifications

n-deposit = Received { $title } ({ $stars } ⭐).
n-holding = You now hold { $plural ->
        [one] { $count } gift
       *[other] { $count } gifts
    } worth { $total } ⭐.
n-queued = Withdrawal { $id } of { $title } is queued.
n-sent = { $title } has been sent to you.
n-waiting = { $title } waits { $until ->
        [none] for an operator
       *[other] until { $until } UTC
    }: { $reason }
n-failed = { $title } could not be sent ({ $reason }); it is in your inventory again.
n-cancelled = Withdrawal { $id } of { $title } was cancelled; it is in your inventory again.
reason-too-early = Telegram locks the gift until then
reason-stars = the desk is short of Stars
reason-approval = an operator must approve the fee
reason-retry = Telegram asked to wait

## /admin: every deposit account in the store, whichever instance serves it

admin-account-desk = · served by { $holder }; queue: { $queued } queued, { $waiting } waiting, { $approval } awaiting approval, { $unknown } unknown
admin-holder-none = no instance now
admin-holder-here = this instance
