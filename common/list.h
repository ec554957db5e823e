/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Intrusive doubly-linked lists, systemd's LIST_* idea: an item has
 * pointer fields named `prev` and `next`; the list is a plain head pointer
 * to the first item (NULL when empty). Both macros are O(1). */

#define LIST_PREPEND(head, item)                                                                   \
        do {                                                                                       \
                __typeof__(item) _li_ = (item);                                                    \
                _li_->prev = NULL;                                                                 \
                _li_->next = (head);                                                               \
                if (_li_->next)                                                                    \
                        _li_->next->prev = _li_;                                                   \
                (head) = _li_;                                                                     \
        } while (0)

/* @item must be in the list that @head starts. */
#define LIST_REMOVE(head, item)                                                                    \
        do {                                                                                       \
                __typeof__(item) _li_ = (item);                                                    \
                if (_li_->prev)                                                                    \
                        _li_->prev->next = _li_->next;                                             \
                else                                                                               \
                        (head) = _li_->next;                                                       \
                if (_li_->next)                                                                    \
                        _li_->next->prev = _li_->prev;                                             \
                _li_->prev = _li_->next = NULL;                                                    \
        } while (0)
