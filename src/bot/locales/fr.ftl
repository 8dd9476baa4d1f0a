# Bot compagnon de giftd, français. Chaque clé existe aussi dans en.ftl (un test le vérifie).

## Commandes enregistrées avec bots.setBotCommands

cmd-start = Qui je suis et comment déposer
cmd-inventory = Vos cadeaux
cmd-withdraw = Récupérer un cadeau
cmd-stats = Vos chiffres
cmd-help = Les commandes
cmd-language = La langue que je parle

## /start, /help

start =
    Bonjour ! Je suis le guichet des cadeaux : je garde les Star Gifts que vous déposez et vous les renvoie quand vous le demandez.
    Pour déposer, envoyez un Star Gift à { $accounts } : il vous est crédité en quelques secondes et je vous préviens.
help =
    /inventory - vos cadeaux, les plus récents d'abord
    /withdraw - récupérer un cadeau
    /stats - ce que vous détenez, avez déposé et retiré
    /language - la langue que je parle
    /help - cette liste
help-admin = /admin - le guichet de l'opérateur
short-help = Je ne comprends que les commandes : /inventory, /withdraw, /stats ou /help.
slow-down = Doucement : attendez quelques secondes avant la prochaine commande.

## /language

language-ask = Dans quelle langue dois-je vous parler ?
language-set = Désormais je vous parle en français, notifications comprises.
language-unsaved = Je vous parle en français, mais je n'ai pas pu l'enregistrer : renvoyez /language plus tard.

## /start <jeton>

link-linked = C'est fait : votre compte Telegram est lié au compte web { $label }.
link-expired = Ce lien a expiré. Demandez-en un nouveau sur le site.
link-used = Ce lien a déjà servi. Si ce n'était pas vous, demandez-en un nouveau sur le site.
link-unknown = Ce lien n'est pas valide. Ouvrez à nouveau le lien depuis le site.
link-unavailable = La liaison est impossible pour le moment ; réessayez dans une minute.
link-ask = Lier votre compte Telegram au compte web { $label } ?
    Ce compte verra vos cadeaux, votre historique et vos retraits, et pourra demander des retraits. Ne confirmez que si vous avez ouvert ce lien vous-même depuis votre propre compte sur le site.
link-ask-replace = Votre compte Telegram est lié au compte web { $old }. Remplacer ce lien par { $label } ?
    { $old } perd l'accès à vos cadeaux et voit que son lien a été remplacé.
link-cancelled = Rien n'a été lié.
link-stale = Cette question a expiré. Ouvrez à nouveau le lien depuis le site.
btn-link = ✅ Lier
btn-replace = Remplacer le lien

## Objets

gift-untitled = Cadeau { $id }
item-line = { $n }. { $title }{ $number ->
        [none] {""}
       *[other] {" "}n° { $number }
    } · { $stars } ⭐{ $value }{ $state ->
        [withdrawing] {" "}(retrait en cours)
       *[held] {""}
    }
btn-prev = ◀ Précédent
btn-next = Suivant ▶
btn-withdraw = Retirer { $n }

## /inventory

inv-empty = Vous n'avez encore aucun cadeau. Envoyez un Star Gift à { $accounts } pour en déposer un.
inv-header = Vos cadeaux : { $count } pour { $stars } ⭐ (page { $page } sur { $pages })

## /withdraw

wd-empty = Vous n'avez rien à retirer pour le moment.
wd-header = Quel cadeau voulez-vous récupérer ? (page { $page } sur { $pages })
confirm-title = Retirer { $title }{ $number ->
        [none] {""}
       *[other] {" "}n° { $number }
    } ({ $stars } ⭐) ?
plan-free = Il est transféré sur votre compte gratuitement.
plan-fee = Telegram facture { $fee } ⭐ pour le transférer ; le guichet paie.
plan-wait = Telegram bloque ce cadeau jusqu'au { $until } UTC : il sera envoyé à ce moment-là.
plan-resend = Un cadeau ordinaire ne peut pas être déplacé : le même cadeau est racheté et vous est envoyé.
plan-refuse = Les cadeaux ordinaires ne peuvent pas être retirés ici, seulement les objets de collection.
plan-busy = Ce cadeau est déjà en cours de retrait.
plan-gone = Ce cadeau n'est plus dans votre inventaire.
btn-confirm = ✅ Confirmer
btn-cancel = Annuler
btn-cancel-request = Annuler le retrait
wd-requested = Retrait { $id } en file : { $title }. Je vous préviens dès qu'il est envoyé.
wd-cancelled = Retrait annulé : le cadeau est de nouveau dans votre inventaire.
wd-dismissed = Rien n'a été modifié.
wd-too-late = Trop tard pour annuler : le cadeau est en cours d'envoi.
wd-error = Votre demande n'a pas pu être enregistrée ; réessayez dans une minute.

## Réponses aux boutons

toast-not-yours = Ceci ne vous appartient pas.
toast-stale = Ce bouton est périmé : renvoyez la commande.
toast-done = C'est fait.

## /stats

stats =
    Vous détenez { $held } cadeaux pour { $stars } ⭐.
    Déposés jusqu'ici : { $deposited }. Retirés jusqu'ici : { $withdrawn }.
    Retraits en attente : { $pending }.
stats-unavailable = Vos chiffres sont illisibles pour le moment ; réessayez dans une minute.

## /admin (opérateurs)

admin-header = Guichet de l'opérateur
admin-account = Compte { $account } : { $items } cadeaux pour { $stars } ⭐, solde { $balance } Stars
admin-balance-unknown = pas encore lu
admin-queue = File : { $approval } à approuver, { $stars } bloqués faute de Stars, { $unknown } à l'issue inconnue.
admin-request = n° { $id } { $title } pour { $owner } : { $state }
admin-unattributed = Cadeaux sans expéditeur : { $count }
admin-unattributed-line = { $n }. { $title } · { $stars } ⭐ ({ $key })
btn-approve = Approuver n° { $id } · { $fee } ⭐
btn-admin-cancel = Annuler n° { $id }
btn-assign = Attribuer { $n }
btn-refresh = Actualiser
assign-prompt = Répondez avec l'identifiant ou le @nom d'utilisateur à qui créditer { $title } ({ $key }).
assign-done = { $key } est maintenant crédité à { $user }.
assign-bad = Envoyez un identifiant numérique ou un @nom d'utilisateur.
assign-unknown-user = Aucun utilisateur { $name } n'a été trouvé ; envoyez son identifiant numérique.
assign-refused = Non attribué : { $key } a déjà un propriétaire.
admin-moved = La demande { $id } est maintenant { $state }.
admin-refused = La demande { $id } n'a pas été modifiée : elle est { $state }.
admin-fee-changed = La demande n° { $id } n'a pas été approuvée : ses frais sont de { $fee } ⭐ maintenant, pas ceux affichés. Regardez à nouveau.
admin-error = La base n'a pas répondu ; réessayez dans une minute.

## Notifications

n-deposit = Reçu : { $title } ({ $stars } ⭐).
n-holding = Vous détenez maintenant { $plural ->
        [one] { $count } cadeau
       *[other] { $count } cadeaux
    } pour { $total } ⭐.
n-queued = Le retrait { $id } de { $title } est en file.
n-sent = { $title } vous a été envoyé.
n-waiting = { $title } attend { $until ->
        [none] un opérateur
       *[other] jusqu'au { $until } UTC
    } : { $reason }
n-failed = { $title } n'a pas pu être envoyé ({ $reason }) ; il est de nouveau dans votre inventaire.
n-cancelled = Le retrait { $id } de { $title } a été annulé ; le cadeau est de nouveau dans votre inventaire.
reason-too-early = Telegram bloque le cadeau jusque-là
reason-stars = le guichet manque de Stars
reason-approval = un opérateur doit approuver les frais
reason-retry = Telegram a demandé d'attendre

## /admin : chaque compte de dépôt de la base, quelle que soit l'instance qui le sert

admin-account-desk = · servi par { $holder } ; file : { $queued } en file, { $waiting } en attente, { $approval } à approuver, { $unknown } à l'issue inconnue
admin-holder-none = aucune instance pour l'instant
admin-holder-here = cette instance
